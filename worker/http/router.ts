/**
 * Routes of the edge worker (SPEC §5) and the one place where errors become
 * responses. Every answer is counted by route pattern and status. Each
 * request gets its dependencies once (the `before` step), and its edge Redis
 * connection is released when it has answered. (A warmed read is usually
 * answered before the router, by `hot-read.ts`.)
 */
import { Router, type IRequest } from "itty-router";
import type { Deps } from "../aggregates";
import { HttpError, errorResponse, isHttpError } from "./errors";
import { healthz } from "./health";
import { hot } from "./hot";
import { depsFor } from "../isolate";
import { metrics } from "../metrics";
import { OverloadedError } from "../sources/edge-redis";
import { prewarm } from "./prewarm";
import { purge } from "./purge";
import { getSku, getSkus } from "./read";
// Written by `npm run openapi` from the contract's schemas (a test holds it to them); in the bundle, so served with no I/O.
import openapiDocument from "../../docs/openapi/edge-node.json";

type Args = [env: Env, ctx: ExecutionContext];
type Req = IRequest & { deps: Deps };

/** Errors become responses here; an unexpected one is logged with a request id, and the client gets only the id (no internal text). */
function toResponse(e: unknown): Response {
  if (isHttpError(e)) return errorResponse(e);
  if (e instanceof OverloadedError) return errorResponse(new HttpError("overloaded", e.message, { "Retry-After": "1" }));
  const id = crypto.randomUUID();
  console.error(`internal error, request ${id}:`, e);
  return errorResponse(new HttpError("internal", `internal error; the node's log has the details under request ${id}`));
}

const TEXT = { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" };

async function nodeMetrics(deps: Deps): Promise<Response> {
  try {
    return new Response(await deps.sync.renderNodeMetrics(deps.redis), { headers: TEXT });
  } catch (e) {
    console.error("node metrics: the edge Redis could not be read", e);
    return new Response(deps.sync.renderLastKnown(), { headers: TEXT });
  }
}

export const router = Router<Req, Args>({
  before: [
    (req: Req, env: Env, ctx: ExecutionContext) => {
      // A path is its route exactly, as the OpenAPI document has it (itty-router would take `/v1/skus/` for `/v1/skus`).
      if (noRoute(req.url)) throw new HttpError("route_not_found", `no route for ${req.method} ${new URL(req.url).pathname}`);
      req.deps = depsFor(env, ctx);
    },
  ],
  catch: toResponse,
  finally: [
    (response: Response, request: Req) => {
      request.deps?.redis.release();
      metrics.httpRequests.inc({ route: request.route ?? "unmatched", status: String(response.status) });
      return response;
    },
  ],
});

/** The routes (SPEC §5): method, path pattern, handler. */
const ROUTES: [method: "GET" | "POST", path: string, handler: (req: Req) => Promise<Response> | Response][] = [
  ["GET", "/v1/skus/:sku", (req) => getSku(req, req.deps)],
  ["GET", "/v1/skus", (req) => getSkus(req, req.deps)],
  ["POST", "/v1/prewarm", (req) => prewarm(req, req.deps)],
  ["POST", "/v1/purge", (req) => purge(req, req.deps)],
  ["GET", "/v1/hot", (req) => hot(req, req.deps)],
  ["GET", "/healthz", (req) => healthz(req.deps)],
  ["GET", "/metrics", (req) => nodeMetrics(req.deps)],
  // No token: the document holds nothing of the node's config.
  ["GET", "/openapi.json", () => Response.json(openapiDocument, { headers: { "Cache-Control": "no-store" } })],
];

/** Each route's path as a regular expression (`:name` is one path segment). */
const MATCHERS = ROUTES.map(([method, path]) => ({ method, re: new RegExp(`^${path.replace(/:[a-z]+/g, "[^/]+")}$`) }));
/** No route has this path, for any method: a trailing slash, an empty segment, an unknown path. */
function noRoute(url: string): boolean {
  const path = new URL(url).pathname;
  return !MATCHERS.some((m) => m.re.test(path));
}

for (const [method, path, handler] of ROUTES) router[method === "GET" ? "get" : "post"](path, handler);
router.all("*", (req) => {
  const path = new URL(req.url).pathname;
  const allowed = MATCHERS.filter((m) => m.re.test(path)).map((m) => m.method);
  if (allowed.length > 0) throw new HttpError("method_not_allowed", `${req.method} is not allowed on ${path}; allowed: ${allowed.join(", ")}`, { Allow: allowed.join(", ") });
  throw new HttpError("route_not_found", `no route for ${req.method} ${path}`);
});

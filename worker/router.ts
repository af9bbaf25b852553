/**
 * Routes of the edge worker (SPEC §5) and the one place where errors become
 * responses. Every answer is counted by route pattern and status. Each
 * request gets its dependencies once (the `before` step), and its edge Redis
 * connection is released when it has answered. (A warmed read is usually
 * answered before the router, by `hot-read.ts`.)
 */
import { Router, type IRequest } from "itty-router";
import type { Deps } from "./aggregates";
import { HttpError, errorResponse, isHttpError } from "./errors";
import { healthz } from "./health";
import { hot } from "./hot";
import { depsFor } from "./isolate";
import { metrics } from "./metrics";
import { prewarm } from "./prewarm";
import { purge } from "./purge";
import { getSku, getSkus } from "./skus";

type Args = [env: Env, ctx: ExecutionContext];
type Req = IRequest & { deps: Deps };

/** Errors become responses here; an unexpected one is logged with a request id, and the client gets only the id (no internal text). */
function toResponse(e: unknown): Response {
  if (isHttpError(e)) return errorResponse(e);
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

router
  .get("/v1/skus/:sku", (req) => getSku(req, req.deps))
  .get("/v1/skus", (req) => getSkus(req, req.deps))
  .post("/v1/prewarm", (req) => prewarm(req, req.deps))
  .post("/v1/purge", (req) => purge(req, req.deps))
  .get("/v1/hot", (req) => hot(req, req.deps))
  .get("/healthz", (req) => healthz(req.deps))
  .get("/metrics", (req) => nodeMetrics(req.deps))
  .all("*", (req) => {
    throw new HttpError("route_not_found", `no route for ${req.method} ${new URL(req.url).pathname}`);
  });

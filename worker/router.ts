/**
 * Routes of the edge worker (SPEC §5) and the one place where errors become
 * responses. Every answer is counted by route pattern and status. Each
 * request gets its dependencies once (`withDeps`), and its edge Redis
 * connection is released when it has answered.
 */
import { Router, type IRequest } from "itty-router";
import type { Deps } from "./aggregates";
import { HttpError, errorResponse, isHttpError } from "./errors";
import { healthz } from "./health";
import { depsFor } from "./isolate";
import { metrics } from "./metrics";
import { prewarm } from "./prewarm";
import { purge } from "./purge";
import { getSku, getSkus } from "./skus";

type Args = [env: Env, ctx: ExecutionContext];
type Req = IRequest & { deps: Deps; admitted?: boolean };

/** API requests this isolate is working on now (admission control at the door). */
let inflight = 0;

function toResponse(e: unknown): Response {
  if (isHttpError(e)) return errorResponse(e);
  console.error("unhandled error", e);
  return errorResponse(new HttpError("internal", e instanceof Error ? `${e.name}: ${e.message}` : "internal error"));
}

const TEXT = { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" };

async function nodeMetrics(deps: Deps): Promise<Response> {
  try {
    return new Response(await deps.sync.renderNodeMetrics(deps.redis), { headers: TEXT });
  } catch (e) {
    return new Response(deps.sync.renderLastKnown((e as Error).message), { headers: TEXT });
  }
}

export const router = Router<Req, Args>({
  before: [
    (req: Req, env: Env, ctx: ExecutionContext) => {
      req.deps = depsFor(env, ctx);
      // Past its capacity an isolate says so at once, rather than let requests time out inside.
      // /healthz and /metrics always answer: they are how ops see it.
      if (!req.url.startsWith("/v1/", req.url.indexOf("/", req.url.indexOf("//") + 2))) return;
      if (inflight >= req.deps.cfg.maxInflightRequests) {
        metrics.shed.inc();
        throw new HttpError("overloaded", `this node is at capacity (${req.deps.cfg.maxInflightRequests} requests in progress per process); retry shortly`, { "Retry-After": "1" });
      }
      inflight++;
      req.admitted = true;
    },
  ],
  catch: toResponse,
  finally: [
    (response: Response, request: Req) => {
      request.deps?.redis.release();
      if (request.admitted) inflight--;
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
  .get("/healthz", (req) => healthz(req.deps))
  .get("/metrics", (req) => nodeMetrics(req.deps))
  .all("*", (req) => {
    throw new HttpError("route_not_found", `no route for ${req.method} ${new URL(req.url).pathname}`);
  });

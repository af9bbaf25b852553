/**
 * Routes of the edge worker (SPEC §5) and the one place where errors become
 * responses. Every answer is counted by route pattern and status.
 */
import { Router, type IRequest } from "itty-router";
import { HttpError, errorResponse, isHttpError } from "./errors";
import { healthz } from "./health";
import { depsFor } from "./isolate";
import { metrics, renderMetrics } from "./metrics";
import { prewarm } from "./prewarm";
import { purge } from "./purge";
import { getSku, getSkus } from "./skus";

type Args = [env: Env, ctx: ExecutionContext];

function toResponse(e: unknown): Response {
  if (isHttpError(e)) return errorResponse(e);
  console.error("unhandled error", e);
  return errorResponse(new HttpError("internal", e instanceof Error ? `${e.name}: ${e.message}` : "internal error"));
}

export const router = Router<IRequest, Args>({
  catch: toResponse,
  finally: [
    (response: Response, request: IRequest) => {
      metrics.httpRequests.inc({ route: request.route ?? "unmatched", status: String(response.status) });
      return response;
    },
  ],
});

router
  .get("/v1/skus/:sku", (req, env, ctx) => getSku(req, depsFor(env, ctx)))
  .get("/v1/skus", (req, env, ctx) => getSkus(req, depsFor(env, ctx)))
  .post("/v1/prewarm", (req, env, ctx) => prewarm(req, depsFor(env, ctx)))
  .post("/v1/purge", (req, env, ctx) => purge(req, depsFor(env, ctx)))
  .get("/healthz", (_req, env, ctx) => healthz(depsFor(env, ctx)))
  .get(
    "/metrics",
    () => new Response(renderMetrics(), { headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" } }),
  )
  .all("*", (req) => {
    throw new HttpError("route_not_found", `no route for ${req.method} ${new URL(req.url).pathname}`);
  });

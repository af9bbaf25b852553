/**
 * GET /v1/hot?top=N&region=R (SPEC §5): the node's most-read SKUs over a
 * recent window, most read first, for the scheduler to merge into the hot-SKU
 * set that plans read. Authenticated like prewarm. When the edge Redis cannot
 * be read, this isolate's own counts answer, marked `X-Hot-Scope: isolate`.
 */
import type { IRequest } from "itty-router";
import type { Deps } from "../aggregates";
import { requireBearer } from "./auth";
import { EdgeRedisError } from "../sources/edge-redis";
import { HttpError } from "./errors";
import { CAPACITY, hotKeys, type HotSku } from "../node/hot-keys";
import { requestRegion } from "./region";

export async function hot(request: IRequest, deps: Deps): Promise<Response> {
  requireBearer(request, deps.cfg.prewarmToken);
  const raw = request.query["top"] ?? "100";
  const top = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || top < 1 || top > CAPACITY) throw new HttpError("bad_request", `top must be an integer in 1..${CAPACITY}, got ${JSON.stringify(raw)}`);
  const region = requestRegion(deps.cfg, request.query["region"]);
  const now = Date.now();
  let skus: HotSku[];
  let scope = "node";
  try {
    skus = await deps.redis.exchange((c) => hotKeys.nodeTop(c, deps.cfg.redisKeyPrefix, top, region, now));
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    skus = hotKeys.top(top, region, now);
    scope = "isolate";
  }
  return new Response(JSON.stringify({ skus }), { headers: { "Content-Type": "application/json", "Cache-Control": "no-store", "X-Hot-Scope": scope } });
}

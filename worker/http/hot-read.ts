/**
 * The fast path of the hottest request: `GET /v1/skus/:sku[?region=R]` whose
 * aggregate this process holds in memory, fresh, while it may trust its hot
 * cache. It is answered before the router, with no per-request objects but
 * the response. Anything else (another route or method, an id or query it
 * does not read plainly, a miss, a stale entry, an untrusted cache) returns
 * null and goes through the router, which gives the same answer the slow way.
 */
import { trustedHot } from "../cache/edge-cache";
import { configOf } from "../config";
import { EdgeRedisSession } from "../sources/edge-redis";
import { isValidRegion, isValidSku } from "../../contract/ids";
import { hotKeys } from "../node/hot-keys";
import { stateFor } from "../isolate";
import { metrics } from "../metrics";
import { answersFor } from "./region";
import { onlyIfCached, serve } from "./read";
import { memKey } from "../cache/entry";

const PREFIX = "/v1/skus/";
const counted = {
  ok: metrics.httpRequests.series({ route: "/v1/skus/:sku", status: "200" }),
  notModified: metrics.httpRequests.series({ route: "/v1/skus/:sku", status: "304" }),
  hit: metrics.cacheLookups.series({ result: "hit" }),
  memory: metrics.cacheLayerHits.series({ layer: "memory" }),
};

export function hotRead(request: Request, env: Env, ctx: ExecutionContext): Response | null {
  if (request.method !== "GET") return null;
  const url = request.url;
  const path = url.indexOf("/", url.indexOf("//") + 2);
  if (path < 0 || !url.startsWith(PREFIX, path)) return null;
  const q = url.indexOf("?", path);
  const sku = q < 0 ? url.slice(path + PREFIX.length) : url.slice(path + PREFIX.length, q);
  if (!isValidSku(sku)) return null; // also anything %-escaped: the router decodes it
  const cfg = configOf(env);
  let region = cfg.edgeRegion;
  if (q >= 0) {
    if (!url.startsWith("region=", q + 1) || url.includes("&", q)) return null;
    region = url.slice(q + 8);
    if (!isValidRegion(region) || !answersFor(cfg, region)) return null;
  }
  const { hot, sync } = stateFor(cfg);
  const now = Date.now();
  const key = memKey(region, sku);
  const found = trustedHot(hot, sync, key, now)?.found;
  if (found?.state !== "fresh" || found.segment.notFound) return null;
  if (onlyIfCached(request)) return null; // a look (verify): no demand to count, and it is told how long the key is cached
  hotKeys.count(key, now);
  if (sync.due(now)) {
    const session = new EdgeRedisSession(cfg);
    ctx.waitUntil(
      sync
        .sync(session)
        .catch(() => undefined)
        .finally(() => session.release()),
    );
  }
  counted.memory.inc();
  counted.hit.inc();
  const response = serve(request, found.segment, "HIT", now);
  (response.status === 304 ? counted.notModified : counted.ok).inc();
  return response;
}

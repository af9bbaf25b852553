/**
 * What one isolate keeps across requests: the Wasm rules instance, the
 * regional breaker (inside its client), the hot cache and the in-flight
 * computations.
 * Nothing with a socket lives here (workerd ties sockets to the request
 * that opened them).
 */
import goStock from "../build/go-stock.wasm";
import type { Deps, SkuOutcome } from "./aggregates";
import { EdgeCache, type CachedAggregate } from "./cache";
import { Coalescer } from "./coalesce";
import { configOf, type Config } from "./config";
import { HotCache } from "./hot-cache";
import { WriteBehind } from "./write-behind";
import { regionalClientFor } from "./regional";
import { RulesHost } from "./rules-host";

export const rulesHost = new RulesHost(goStock);

/** Read-through computations in flight, by `${region}\n${sku}`. */
export const inflight = new Coalescer<SkuOutcome>(100);

/**
 * Cache lookups in flight, by the same keys: a burst of requests for one key
 * costs one Cache API read, and each request still judges freshness at its
 * own millisecond. Nothing is kept once the lookup has answered.
 */
export const lookups = new Coalescer<CachedAggregate | null>();

/**
 * Cache API writes behind the hot cache are queued per request, 8 at a time:
 * workerd forbids one request's I/O objects from being used by another, so a
 * queue shared by the isolate would run request A's writes in request B.
 */
const MAX_WRITES_WAITING = 4 * 1024;

const hotCaches = new WeakMap<Config, HotCache>();

/** The isolate's hot cache (one per configuration, which is one per isolate outside tests). */
function hotCacheFor(cfg: Config): HotCache {
  let h = hotCaches.get(cfg);
  if (!h) {
    h = new HotCache(cfg.hotCacheMaxBytes);
    hotCaches.set(cfg, h);
  }
  return h;
}

export function depsFor(env: Env, ctx: ExecutionContext): Deps {
  const cfg = configOf(env);
  const background = (work: Promise<unknown>): void => ctx.waitUntil(work);
  return {
    cfg,
    rules: rulesHost,
    cache: new EdgeCache(caches.default, Math.max(cfg.staleWhileRevalidateSeconds, cfg.staleIfErrorSeconds), hotCacheFor(cfg), new WriteBehind(8, MAX_WRITES_WAITING), cfg.cacheApiWrites, background),
    regional: regionalClientFor(cfg),
    background,
  };
}

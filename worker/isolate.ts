/**
 * What one isolate keeps across requests: the Wasm rules instance, the
 * regional breaker (inside its client), the hot cache, the node sync state
 * and the in-flight computations; and the per-request dependencies built
 * from them. Nothing with a socket lives here (workerd ties sockets to the
 * request that opened them): each request gets its own EdgeRedisSession.
 */
import goStock from "../build/go-stock.wasm";
import type { Deps, SkuOutcome } from "./aggregates";
import { EdgeCache } from "./cache/edge-cache";
import { Coalescer } from "./cache/coalesce";
import { configOf, type Config } from "./config";
import { EdgeRedisSession } from "./sources/edge-redis";
import { HotCache } from "./cache/hot-cache";
import { NodeSync } from "./node/sync";
import { regionalClientFor } from "./sources/regional";
import { RulesHost } from "./rules/host";
import { RULES_VERSION } from "./rules/version";
import { CacheApiStore, RedisStore, type AggregateStore, type GlobalTier } from "./cache/store";
import { KvTier } from "./cache/kv-tier";
import { WriteBehind } from "./cache/write-behind";
import { purgeMatches, type CachedAggregate, type MemKey, type PurgeMatch } from "./cache/entry";

export const rulesHost = new RulesHost(goStock);

/**
 * Read-through computations in flight, by `${region}\n${sku}`. A waiter gives
 * up on another request's computation after STRANDED_MS (well past the edge
 * Redis and regional budgets of a read) and computes the key itself.
 */
const STRANDED_MS = 5_000;
export const inflight = new Coalescer<SkuOutcome>(100, STRANDED_MS);

/**
 * Cache lookups in flight, by the same keys: a burst of requests for one key
 * costs one store read, and each request still judges freshness at its own
 * millisecond. Nothing is kept once the lookup has answered.
 */
export const lookups = new Coalescer<CachedAggregate | null>(0, STRANDED_MS);

/**
 * Cache API writes behind read-through computations are queued per request,
 * 8 at a time: workerd forbids one request's I/O objects from being used by
 * another, so a queue shared by the isolate would run request A's writes in
 * request B.
 */
const MAX_WRITES_WAITING = 4 * 1024;

export interface IsolateState {
  hot: HotCache;
  sync: NodeSync;
}

const states = new WeakMap<Config, IsolateState>();

/** The isolate's hot cache and sync state (one per configuration, which is one per isolate outside tests). */
export function stateFor(cfg: Config): IsolateState {
  let s = states.get(cfg);
  if (!s) {
    const hot = new HotCache(cfg.hotCacheMaxBytes);
    const drop = (what: MemKey | "all" | PurgeMatch): number => {
      if (what === "all") {
        const n = hot.size;
        hot.clear();
        return n;
      }
      if (typeof what === "string") return hot.delete(what) ? 1 : 0;
      return hot.deleteWhere((key, entry) => purgeMatches(what, key, entry));
    };
    s = { hot, sync: new NodeSync(cfg, drop) };
    states.set(cfg, s);
  }
  return s;
}

/** The Cache API cache of the aggregates: the zone's default, or the one CACHE_NAME names. */
function cacheOf(cfg: Config): Cache | Promise<Cache> {
  return cfg.cacheName === "" ? caches.default : caches.open(cfg.cacheName);
}

/** Workers KV behind the Cache API, when AGGREGATES_KV is bound (else the store is the data centre's Cache API alone). */
function globalTier(env: Env, cfg: Config, grace: number, background: (work: Promise<unknown>) => void): GlobalTier | null {
  const kv = env.AGGREGATES_KV;
  return kv ? { tier: new KvTier(kv, cfg.redisKeyPrefix, grace), localCopyTtlSeconds: cfg.localCopyTtlSeconds, background } : null;
}

export function depsFor(env: Env, ctx: ExecutionContext): Deps {
  const cfg = configOf(env);
  const { hot, sync } = stateFor(cfg);
  const background = (work: Promise<unknown>): void => ctx.waitUntil(work);
  const redis = new EdgeRedisSession(cfg);
  const grace = Math.max(cfg.staleWhileRevalidateSeconds, cfg.staleIfErrorSeconds);
  const store: AggregateStore = cfg.aggregateStore === "redis" ? new RedisStore(redis, sync, grace, RULES_VERSION) : new CacheApiStore(cacheOf(cfg), redis, sync, grace, globalTier(env, cfg, grace, background));
  return {
    cfg,
    rules: rulesHost,
    cache: new EdgeCache(hot, store, sync, new WriteBehind(8, MAX_WRITES_WAITING), background, RULES_VERSION),
    regional: regionalClientFor(cfg),
    redis,
    sync,
    background,
  };
}

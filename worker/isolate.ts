/**
 * What one isolate keeps across requests: the Wasm rules instance, the
 * regional breaker (inside its client) and the in-flight computations.
 * Nothing with a socket lives here (workerd ties sockets to the request
 * that opened them).
 */
import goStock from "../build/go-stock.wasm";
import type { Deps, SkuOutcome } from "./aggregates";
import { EdgeCache, type CachedAggregate } from "./cache";
import { Coalescer } from "./coalesce";
import { configOf } from "./config";
import { regionalClientFor } from "./regional";
import { RulesHost } from "./rules-host";

export const rulesHost = new RulesHost(goStock);

/** Read-through computations in flight, by `${region}\n${sku}`. */
export const inflight = new Coalescer<SkuOutcome>();

/**
 * Cache lookups in flight, by the same keys: a burst of requests for one key
 * costs one Cache API read, and each request still judges freshness at its
 * own millisecond. Nothing is kept once the lookup has answered.
 */
export const lookups = new Coalescer<CachedAggregate | null>();

export function depsFor(env: Env, ctx: ExecutionContext): Deps {
  const cfg = configOf(env);
  return {
    cfg,
    rules: rulesHost,
    cache: new EdgeCache(caches.default, Math.max(cfg.staleWhileRevalidateSeconds, cfg.staleIfErrorSeconds)),
    regional: regionalClientFor(cfg),
    background: (work) => ctx.waitUntil(work),
  };
}

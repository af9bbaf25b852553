/** GET /healthz: can this node answer? (edge Redis, regional breaker, Wasm, version, rules version) */
import type { Deps } from "../aggregates";

import { ABI_VERSION } from "../rules/host";
import { RULES_VERSION } from "../rules/version";
import { version } from "../../package.json";
import { GLOBAL_PROPAGATION_MS, type WarmScope } from "../../contract/prewarm";
import { KV_PROPAGATION_MS } from "../cache/kv-tier";
import type { StoreScope } from "../cache/store";

// The worker's bound and the contract's are one: a change to either alone fails the type check.
const sameBound: typeof GLOBAL_PROPAGATION_MS = KV_PROPAGATION_MS;
// And the store's scopes are the contract's.
const sameScopes = (s: StoreScope): WarmScope => s;

/** The package's version (package.json, put in the bundle by the build), the one a self-hosted node also announces. */
export const VERSION: string = version;

export async function healthz(deps: Deps): Promise<Response> {
  // The supervisor asks every process each second: an idle one still flushes its counters and reads the change log.
  deps.sync.poke(deps.redis, deps.background);
  let redis: { ok: boolean; error?: string };
  try {
    await deps.redis.exchange((c) => c.ping(), { counted: false });
    redis = { ok: true };
  } catch (e) {
    redis = { ok: false, error: (e as Error).message };
  }
  let wasm: { ok: boolean; abi: number; error?: string };
  try {
    deps.rules.ensureLoaded();
    wasm = { ok: true, abi: ABI_VERSION };
  } catch (e) {
    wasm = { ok: false, abi: ABI_VERSION, error: (e as Error).message };
  }
  const ok = redis.ok && wasm.ok;
  return Response.json(
    {
      status: ok ? "ok" : "degraded",
      version: VERSION,
      rules: RULES_VERSION,
      region: deps.cfg.edgeRegion,
      store: deps.cfg.aggregateStore,
      // Where a prewarm or a purge sent here reaches, and (global) how long it takes to be seen everywhere.
      scope: sameScopes(deps.cache.scope),
      ...(deps.cache.scope === "global" ? { propagationMs: sameBound } : {}),
      edgeRedis: redis,
      regional: { configured: deps.regional !== null, breaker: deps.regional?.state ?? "closed" },
      wasm,
    },
    { status: ok ? 200 : 503, headers: { "Cache-Control": "no-store" } },
  );
}

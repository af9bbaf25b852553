/**
 * Computing aggregates for a batch of SKUs: raw records from the edge Redis
 * (one pipelined round trip), the go-stock rules (one Wasm call), and per-SKU
 * outcomes. Shared by prewarm and by read-through on a cache miss.
 */
import { etagOf, type CachedAggregate, type EdgeCache } from "./cache";
import type { Config } from "./config";
import { EdgeRedisError, readRecords, type RecordPair } from "./edge-redis";
import type { SkuFailureCode } from "./errors";
import { metrics } from "./metrics";
import type { RulesHost, RulesInput, Source } from "./rules-host";

export interface Deps {
  cfg: Config;
  rules: RulesHost;
  cache: EdgeCache;
}

export type SkuOutcome =
  | { sku: string; ok: true; source: Source; entry: CachedAggregate }
  | { sku: string; ok: false; code: SkuFailureCode; detail: string };

export interface BatchRequest {
  skus: readonly string[];
  region: string;
  ttlSeconds: number;
}

/** Computes the aggregates of a batch; never throws for one SKU's sake. */
export async function computeAggregates(deps: Deps, req: BatchRequest): Promise<SkuOutcome[]> {
  const { cfg, rules } = deps;
  let records: RecordPair[] | null;
  let redisFailure = "";
  try {
    records = await readRecords(cfg, req.skus);
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    records = null;
    redisFailure = e.message;
  }
  if (records === null) {
    // Without the edge Redis the data can only come from the region, which
    // this node does not have yet: every SKU is unavailable, none is "missing".
    return req.skus.map((sku) => ({ sku, ok: false, code: "regional_unavailable", detail: redisFailure }));
  }

  // Times are read after the I/O: a Worker's clock only moves across I/O.
  const now = Date.now();
  const inputs: RulesInput[] = req.skus.map((sku, i) => ({
    sku,
    region: req.region,
    now,
    ttlMs: req.ttlSeconds * 1000,
    source: "edge",
    stock: records[i]!.stock,
    price: records[i]!.price,
  }));
  const started = performance.now();
  const results = rules.run(inputs);
  metrics.rulesBatchSeconds.observe((performance.now() - started) / 1000);

  return Promise.all(
    results.map(async (r, i): Promise<SkuOutcome> => {
      const sku = req.skus[i]!;
      if (!r.ok) return { sku, ok: false, code: r.code, detail: r.detail };
      return {
        sku,
        ok: true,
        source: "edge",
        entry: { json: r.json, computedAt: now, validUntil: r.validUntil, etag: await etagOf(r.json) },
      };
    }),
  );
}

/** Writes every successful outcome to the edge cache, all at once. */
export async function storeAggregates(cache: EdgeCache, region: string, outcomes: readonly SkuOutcome[], now: number): Promise<void> {
  await Promise.all(outcomes.map((o) => (o.ok ? cache.put(o.sku, region, o.entry, now) : undefined)));
}

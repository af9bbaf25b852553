/**
 * Computing aggregates for a batch of SKUs: raw records from the edge Redis
 * (one pipelined round trip), the regional aggregator for what the edge
 * lacks or holds corrupt (one batched call), the go-stock rules (one Wasm
 * call per source), and per-SKU outcomes. Shared by prewarm and by
 * read-through on a cache miss.
 */
import { type EdgeCache, type WriteCause } from "./cache/edge-cache";
import type { Config } from "./config";
import { EdgeRedisError, readRecords, refillRecords, takeLeases, type EdgeRedisSession, type RecordPair } from "./sources/edge-redis";
import type { SkuFailureCode } from "../contract/prewarm";
import { metrics } from "./metrics";
import type { NodeSync } from "./node/sync";
import { RegionalUnavailableError, type RegionalClient } from "./sources/regional";
import type { RulesHost, RulesInput, RulesOutput, Source } from "./rules/host";
import { type CachedAggregate, notFoundEntry, storeKey } from "./cache/entry";

export interface Deps {
  cfg: Config;
  rules: RulesHost;
  cache: EdgeCache;
  regional: RegionalClient | null;
  /** The request's connection to the edge Redis. */
  redis: EdgeRedisSession;
  /** The isolate's place in the node (change log, metrics). */
  sync: NodeSync;
  /** Keeps work going after the response (ctx.waitUntil). */
  background(work: Promise<unknown>): void;
}

export type SkuOutcome =
  | { sku: string; ok: true; source: Source; entry: CachedAggregate }
  | { sku: string; ok: false; code: SkuFailureCode; detail: string };

export interface BatchRequest {
  skus: readonly string[];
  region: string;
  ttlSeconds: number;
  /** Up to this much (s) is taken off each SKU's TTL, by SKU, so a batch's keys do not all expire in the same second. @default 0 */
  ttlJitterSeconds?: number;
}

/**
 * A SKU's share of the jitter: the same for the same SKU (a re-warm keeps its
 * offset), spread evenly over SKUs (FNV-1a of the id), in whole milliseconds.
 */
export function jitterMs(sku: string, jitterSeconds: number): number {
  if (jitterSeconds <= 0) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < sku.length; i++) h = Math.imul(h ^ sku.charCodeAt(i), 0x01000193);
  return (h >>> 0) % (jitterSeconds * 1000 + 1);
}

/** The most segments of price timeline kept per entry (the aggregate now + 3 changes). */
export const MAX_SEGMENTS = 4;

type Failure = Extract<SkuOutcome, { ok: false }>;

/** Computes the aggregates of a batch; never throws for one SKU's sake. */
export async function computeAggregates(deps: Deps, req: BatchRequest, trigger: "prewarm" | "read"): Promise<SkuOutcome[]> {
  metrics.computations.inc({ trigger });
  const { cfg, rules } = deps;
  const ttlOf = (sku: string): number => req.ttlSeconds * 1000 - jitterMs(sku, req.ttlJitterSeconds ?? 0);

  let edge: RecordPair[] | null = null;
  let edgeFailure = "";
  try {
    edge = await readRecords(deps.redis, req.skus);
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    edgeFailure = e.message;
  }

  // The edge first; what it lacks, or holds corrupt, goes to the region.
  const now = Date.now(); // read after the I/O: a Worker's clock only moves across I/O
  const computed = new Map<string, Computed>();
  const pending: Failure[] = [];
  if (edge) {
    const results = runRules(rules, req.skus.map((sku, i) => input(sku, req.region, now, ttlOf(sku), "edge", edge[i]!)));
    req.skus.forEach((sku, i) => {
      const out = results[i]!;
      if (out.ok) computed.set(sku, { source: "edge", out, records: edge[i]!, computedAt: now });
      else pending.push({ sku, ok: false, code: out.code, detail: `edge: ${out.detail}` });
    });
  } else {
    for (const sku of req.skus) pending.push({ sku, ok: false, code: "regional_unavailable", detail: edgeFailure });
  }

  const failures = new Map<string, Failure>();
  if (pending.length > 0 && deps.regional) {
    try {
      const fetched = await fetchOncePerNode(deps, deps.regional, req.region, pending, edge !== null);
      const found = pending.filter((f) => fetched.has(f.sku));
      const at = Date.now();
      const results = runRules(rules, found.map((f) => input(f.sku, req.region, at, ttlOf(f.sku), "regional", fetched.get(f.sku)!)));
      found.forEach((f, i) => {
        const out = results[i]!;
        if (out.ok) computed.set(f.sku, { source: "regional", out, records: fetched.get(f.sku)!, computedAt: at });
        else failures.set(f.sku, { ...f, code: out.code, detail: `regional: ${out.detail}` });
      });
      for (const f of pending) {
        if (fetched.has(f.sku)) continue;
        // Unknown to the region too: not found, unless the edge holds something corrupt.
        failures.set(f.sku, f.code === "invalid_record" ? f : { ...f, code: "not_found", detail: `${f.detail}; unknown to the region` });
      }
      if (fetched.size > 0 && edge !== null) deps.background(refill(deps.redis, cfg, fetched));
    } catch (e) {
      if (!(e instanceof RegionalUnavailableError)) throw e;
      for (const f of pending) failures.set(f.sku, { ...f, code: "regional_unavailable", detail: `${f.detail}; ${e.message}` });
    }
  } else {
    for (const f of pending) failures.set(f.sku, f);
  }

  const timelines = timelinesOf(deps, req.region, ttlOf, computed);
  return req.skus.map((sku): SkuOutcome => {
    const t = timelines.get(sku);
    if (t) return { sku, ok: true, source: computed.get(sku)!.source, entry: t };
    return failures.get(sku)!;
  });
}

function input(sku: string, region: string, now: number, ttlMs: number, source: Source, r: RecordPair): RulesInput {
  return { sku, region, now, ttlMs, source, stock: r.stock, price: r.price };
}

function runRules(rules: RulesHost, inputs: RulesInput[]): RulesOutput[] {
  return inputs.length === 0 ? [] : rules.run(inputs);
}

/** How often a process waiting for another's regional fetch looks for the refilled records. */
const REFILL_POLL_MS = 10;

/**
 * Fetches records from the region so that concurrent misses of one SKU on
 * all the node's processes cost one regional request, not one per process
 * (coalescing within a process is `Coalescer`'s job). For SKUs the edge lacks
 * outright, each process first takes a short lease in the edge Redis (SET NX,
 * one round trip for the batch); a process that does not get one waits, up to
 * the regional budget, for the records the lease holder refills, and fetches
 * what has not come by then itself. Without an edge Redis, it simply fetches.
 */
async function fetchOncePerNode(deps: Deps, regional: RegionalClient, region: string, pending: readonly Failure[], edgeUp: boolean): Promise<Map<string, RecordPair>> {
  const fetch = (skus: string[]): Promise<Map<string, RecordPair>> => (skus.length === 0 ? Promise.resolve(new Map()) : regional.fetchRecords(region, skus));
  const missing = pending.filter((f) => f.code === "not_found").map((f) => f.sku);
  const direct = pending.filter((f) => f.code !== "not_found").map((f) => f.sku);
  if (!edgeUp || missing.length === 0) return fetch(pending.map((f) => f.sku));
  const budgetMs = deps.cfg.regionalTimeoutMs + 100;
  let leased: boolean[];
  try {
    leased = await takeLeases(deps.redis, region, missing, budgetMs + 50);
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    return fetch(pending.map((f) => f.sku));
  }
  const mine = [...direct, ...missing.filter((_, i) => leased[i])];
  const theirs = missing.filter((_, i) => !leased[i]);
  const [fetched, refilled] = await Promise.all([fetch(mine), awaitRefill(deps.redis, theirs, Date.now() + budgetMs)]);
  const late = theirs.filter((sku) => !refilled.has(sku));
  const more = await fetch(late);
  return new Map([...fetched, ...refilled, ...more]);
}

/** Polls the edge Redis until the records of `skus` appear (another process refilled them) or the deadline passes. */
async function awaitRefill(session: EdgeRedisSession, skus: readonly string[], deadline: number): Promise<Map<string, RecordPair>> {
  const found = new Map<string, RecordPair>();
  let left = [...skus];
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, REFILL_POLL_MS));
    let pairs: RecordPair[];
    try {
      pairs = await readRecords(session, left);
    } catch {
      break;
    }
    left = left.filter((sku, i) => {
      const p = pairs[i]!;
      if (p.stock === null && p.price === null) return true;
      found.set(sku, p);
      return false;
    });
  }
  return found;
}

async function refill(session: EdgeRedisSession, cfg: Config, fetched: Map<string, RecordPair>): Promise<void> {
  try {
    await refillRecords(session, fetched, cfg.regionalRefillTtlSeconds);
  } catch {
    // Counted as an edge Redis error; the next read simply asks the region again.
  }
}

interface Computed {
  source: Source;
  records: RecordPair;
  /** The `now` of the first aggregate; the TTL runs from here. */
  computedAt: number;
  out: Extract<RulesOutput, { ok: true }>;
}

/**
 * Each aggregate and, when its validity ends at a price change before its
 * TTL does, the aggregates from each change to the end of the same TTL:
 * computed from the same records, one Wasm call per step for the batch.
 */
function timelinesOf(deps: Deps, region: string, ttlOf: (sku: string) => number, computed: Map<string, Computed>): Map<string, CachedAggregate> {
  const timelines = new Map<string, CachedAggregate>();
  let step = [...computed].map(([sku, c]) => ({ sku, c, from: c.computedAt, out: c.out as RulesOutput }));
  for (let round = 0; step.length > 0; round++) {
    const next: typeof step = [];
    for (const s of step) {
      if (!s.out.ok) continue; // the same records cannot fail later; if they do, the timeline just ends
      const t = timelines.get(s.sku) ?? { segments: [] };
      t.segments.push({ json: s.out.json, computedAt: s.from, validUntil: s.out.validUntil, nextAt: s.out.nextAt });
      timelines.set(s.sku, t);
      const horizon = s.c.computedAt + ttlOf(s.sku);
      if (round + 1 < MAX_SEGMENTS && s.out.validUntil === s.out.nextAt && s.out.validUntil < horizon) {
        next.push({ ...s, from: s.out.validUntil });
      }
    }
    if (next.length === 0) break;
    const results = runRules(deps.rules, next.map((s) => input(s.sku, region, s.from, s.c.computedAt + ttlOf(s.sku) - s.from, s.c.source, s.c.records)));
    next.forEach((s, i) => (s.out = results[i]!));
    step = next;
  }
  return timelines;
}

/**
 * Writes every successful outcome to the edge cache, all at once, and, when
 * `negativeTtlSeconds` > 0, a `not_found` for that long (so that reads of an
 * unknown SKU do not each cost an edge Redis and a regional request).
 */
export async function storeAggregates(cache: EdgeCache, region: string, outcomes: readonly SkuOutcome[], now: number, cause: WriteCause, negativeTtlSeconds = 0): Promise<void> {
  const items = outcomes.flatMap((o) => {
    if (o.ok) return [{ key: storeKey(o.sku, region), entry: o.entry }];
    if (o.code === "not_found" && negativeTtlSeconds > 0) return [{ key: storeKey(o.sku, region), entry: notFoundEntry(now, negativeTtlSeconds * 1000) }];
    return [];
  });
  await cache.putMany(items, now, cause);
}

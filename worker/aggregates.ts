/**
 * Computing aggregates for a batch of SKUs: raw records from the edge Redis
 * (one pipelined round trip), the regional aggregator for what the edge
 * lacks or holds corrupt (one batched call), the go-stock rules (one Wasm
 * call per source), and per-SKU outcomes. Shared by prewarm and by
 * read-through on a cache miss.
 */
import { type EdgeCache, type WriteCause, type WriteResult } from "./cache/edge-cache";
import type { Config } from "./config";
import { EdgeRedisError, keepRegionalCopies, readRecords, takeLeases, type EdgeRecords, type EdgeRedisSession, type RecordPair } from "./sources/edge-redis";
import type { SkuFailureCode } from "../contract/prewarm";
import { mergeTags } from "../contract/tags";
import { RULES_VERSION } from "./rules/version";
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
  /** `basis`: when the records that showed the failure were read (a cached not_found is conditional on it, as an entry is). */
  | { sku: string; ok: false; code: Exclude<SkuFailureCode, "purged">; detail: string; basis?: number };

export interface BatchRequest {
  skus: readonly string[];
  region: string;
  ttlSeconds: number;
  /** Up to this much (s) is taken off each SKU's TTL, by SKU, so a batch's keys do not all expire in the same second. @default 0 */
  ttlJitterSeconds?: number;
  /** Tags the request names (SPEC §9), added to every aggregate's. */
  tags?: readonly string[];
  /**
   * When the batch's records were read, at the latest: a read that found its
   * records along with its cache lookup passes the lookup's start. @default the computation's start
   */
  basis?: number;
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
  const { rules } = deps;
  const basis = req.basis ?? Date.now();
  const ttlOf = (sku: string): number => req.ttlSeconds * 1000 - jitterMs(sku, req.ttlJitterSeconds ?? 0);

  let edge: EdgeRecords[] | null = null;
  let edgeFailure = "";
  try {
    // A read uses the region's copy the node keeps; a prewarm asks the region afresh for what the edge lacks.
    edge = await readRecords(deps.redis, req.skus, trigger === "read");
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    edgeFailure = e.message;
  }

  // The edge first; what it lacks, or holds corrupt, comes from the region's copy on the node, else from the region.
  const now = Date.now(); // read after the I/O: a Worker's clock only moves across I/O
  const computed = new Map<string, Computed>();
  const failures = new Map<string, Failure>();
  const pending: Failure[] = [];
  if (edge) {
    const results = runRules(rules, req.skus.map((sku, i) => input(sku, req.region, now, ttlOf(sku), "edge", edge[i]!)));
    const copied: { f: Failure; copy: RecordPair }[] = [];
    req.skus.forEach((sku, i) => {
      const out = results[i]!;
      if (out.ok) computed.set(sku, { source: "edge", out, records: edge[i]!, computedAt: now });
      else {
        const f: Failure = { sku, ok: false, code: out.code, detail: `edge: ${out.detail}` };
        const copy = edge[i]!.copy;
        if (copy === null) pending.push(f);
        // Unknown to the region (asked moments ago): not found, unless the edge holds something corrupt.
        else if (copy.stock === null && copy.price === null) failures.set(sku, f.code === "invalid_record" ? f : { ...f, code: "not_found", detail: `${f.detail}; unknown to the region (asked moments ago)` });
        else copied.push({ f, copy });
      }
    });
    computeFrom(rules, copied, req.region, now, ttlOf, computed, failures);
  } else {
    for (const sku of req.skus) pending.push({ sku, ok: false, code: "regional_unavailable", detail: edgeFailure });
  }

  if (pending.length > 0 && deps.regional) {
    try {
      const fetched = await fetchOncePerNode(deps, deps.regional, req.region, pending, edge !== null, trigger === "read");
      const found = pending.filter((f) => fetched.has(f.sku));
      computeFrom(rules, found.map((f) => ({ f, copy: fetched.get(f.sku)! })), req.region, Date.now(), ttlOf, computed, failures);
      for (const f of pending) {
        if (fetched.has(f.sku)) continue;
        // Unknown to the region too: not found, unless the edge holds something corrupt.
        failures.set(f.sku, f.code === "invalid_record" ? f : { ...f, code: "not_found", detail: `${f.detail}; unknown to the region` });
      }
    } catch (e) {
      if (!(e instanceof RegionalUnavailableError)) throw e;
      for (const f of pending) failures.set(f.sku, { ...f, code: "regional_unavailable", detail: `${f.detail}; ${e.message}` });
    }
  } else {
    for (const f of pending) failures.set(f.sku, f);
  }

  const timelines = timelinesOf(deps, req.region, ttlOf, computed, basis, req.tags ?? []);
  return req.skus.map((sku): SkuOutcome => {
    const t = timelines.get(sku);
    if (t) return { sku, ok: true, source: computed.get(sku)!.source, entry: t };
    return { ...failures.get(sku)!, basis };
  });
}

/** Runs the rules on the region's records of `items` (fetched, or the node's copy): `regional` aggregates, or failures. */
function computeFrom(rules: RulesHost, items: readonly { f: Failure; copy: RecordPair }[], region: string, at: number, ttlOf: (sku: string) => number, computed: Map<string, Computed>, failures: Map<string, Failure>): void {
  const results = runRules(rules, items.map(({ f, copy }) => input(f.sku, region, at, ttlOf(f.sku), "regional", copy)));
  items.forEach(({ f, copy }, i) => {
    const out = results[i]!;
    if (out.ok) computed.set(f.sku, { source: "regional", out, records: copy, computedAt: at });
    else failures.set(f.sku, { ...f, code: out.code, detail: `regional: ${out.detail}` });
  });
}

function input(sku: string, region: string, now: number, ttlMs: number, source: Source, r: RecordPair): RulesInput {
  return { sku, region, now, ttlMs, source, stock: r.stock, price: r.price };
}

function runRules(rules: RulesHost, inputs: RulesInput[]): RulesOutput[] {
  return inputs.length === 0 ? [] : rules.run(inputs);
}

/** How often a process waiting for another's regional fetch looks for the region's copy. */
const COPY_POLL_MS = 10;

/**
 * Fetches records from the region so that concurrent misses of one SKU on
 * all the node's processes cost one regional request, not one per process
 * (coalescing within a process is `Coalescer`'s job). For SKUs the edge lacks
 * outright, each process first takes a short lease in the edge Redis (SET NX,
 * one round trip for the batch); a process that does not get one waits, up to
 * the regional budget, for the lease holder's answer: the region's copy of
 * both records, or its note that the region does not know the SKU, never
 * half a pair; and fetches what has not come by then itself. Whatever this
 * process fetched is kept as the region's copy for the others (unless a
 * purge came since it asked). Without an edge Redis, or for a prewarm
 * (`shared` false), it simply fetches.
 */
async function fetchOncePerNode(deps: Deps, regional: RegionalClient, region: string, pending: readonly Failure[], edgeUp: boolean, shared: boolean): Promise<Map<string, RecordPair>> {
  const budgetMs = deps.cfg.regionalTimeoutMs + 100;
  const fetch = async (skus: string[]): Promise<Map<string, RecordPair>> => {
    if (skus.length === 0) return new Map();
    const asked = Date.now();
    const got = await regional.fetchRecords(region, skus);
    if (edgeUp) {
      const unknown = skus.filter((sku) => !got.has(sku));
      deps.background(keepCopies(deps.redis, deps.cfg, got, unknown, asked, budgetMs + 50));
    }
    return got;
  };
  const missing = pending.filter((f) => f.code === "not_found").map((f) => f.sku);
  const direct = pending.filter((f) => f.code !== "not_found").map((f) => f.sku);
  // A prewarm asks the region itself: what another process fetched may have been asked before the prewarm began.
  if (!edgeUp || !shared || missing.length === 0) return fetch(pending.map((f) => f.sku));
  let leased: boolean[];
  try {
    leased = await takeLeases(deps.redis, region, missing, budgetMs + 50);
  } catch (e) {
    if (!(e instanceof EdgeRedisError)) throw e;
    return fetch(pending.map((f) => f.sku));
  }
  const mine = [...direct, ...missing.filter((_, i) => leased[i])];
  const theirs = missing.filter((_, i) => !leased[i]);
  const [fetched, copies] = await Promise.all([fetch(mine), awaitCopies(deps.redis, theirs, Date.now() + budgetMs)]);
  const late = theirs.filter((sku) => !copies.has(sku));
  const more = await fetch(late);
  const records = new Map([...fetched, ...more]);
  for (const [sku, copy] of copies) if (copy.stock !== null || copy.price !== null) records.set(sku, copy);
  return records;
}

/**
 * Polls the edge Redis until the region's copy of each of `skus` appears
 * (another process fetched it: both records, or that the region does not
 * know the SKU) or the deadline passes.
 */
async function awaitCopies(session: EdgeRedisSession, skus: readonly string[], deadline: number): Promise<Map<string, RecordPair>> {
  const found = new Map<string, RecordPair>();
  let left = [...skus];
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, COPY_POLL_MS));
    let read: EdgeRecords[];
    try {
      read = await readRecords(session, left, true);
    } catch {
      break;
    }
    left = left.filter((sku, i) => {
      const copy = read[i]!.copy;
      if (copy === null) return true;
      found.set(sku, copy);
      return false;
    });
  }
  return found;
}

async function keepCopies(session: EdgeRedisSession, cfg: Config, fetched: Map<string, RecordPair>, unknown: readonly string[], asked: number, unknownTtlMs: number): Promise<void> {
  try {
    await keepRegionalCopies(session, fetched, unknown, asked, cfg.regionalRefillTtlSeconds, unknownTtlMs);
  } catch {
    // Counted as an edge Redis error; the next miss simply asks the region again.
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
function timelinesOf(deps: Deps, region: string, ttlOf: (sku: string) => number, computed: Map<string, Computed>, basis: number, requestTags: readonly string[]): Map<string, CachedAggregate> {
  const timelines = new Map<string, CachedAggregate>();
  let step = [...computed].map(([sku, c]) => ({ sku, c, from: c.computedAt, out: c.out as RulesOutput }));
  for (let round = 0; step.length > 0; round++) {
    const next: typeof step = [];
    for (const s of step) {
      if (!s.out.ok) continue; // the same records cannot fail later; if they do, the timeline just ends
      const t = timelines.get(s.sku) ?? { segments: [], basis };
      const tags = mergeTags([`sku:${s.sku}`], s.out.tags === "" ? [] : s.out.tags.split(" "), requestTags).join(" ");
      t.segments.push({ json: s.out.json, computedAt: s.from, validUntil: s.out.validUntil, nextAt: s.out.nextAt, tags, rules: RULES_VERSION });
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
 * Writes what each outcome means for the edge cache, all at once, each only
 * over older data (`EdgeCache.putMany`): an aggregate; for a SKU found
 * `not_found`, a cached not_found for NEGATIVE_TTL_SECONDS (so that reads of
 * an unknown SKU do not each cost an edge Redis and a regional request, and
 * an aggregate of a SKU whose records are gone is replaced, not kept warm),
 * or, where that is 0, the removal of its aggregate. Other failures leave
 * the cache as it is. The result of each SKU's write, by SKU.
 */
export async function storeAggregates(cache: EdgeCache, region: string, outcomes: readonly SkuOutcome[], now: number, cause: WriteCause, negativeTtlSeconds: number): Promise<Map<string, WriteResult>> {
  const items = outcomes.flatMap((o) => {
    if (o.ok) return [{ key: storeKey(o.sku, region), entry: o.entry }];
    if (o.code !== "not_found") return [];
    const basis = o.basis ?? now;
    const entry: CachedAggregate = negativeTtlSeconds > 0 ? notFoundEntry(o.sku, now, negativeTtlSeconds * 1000, basis, RULES_VERSION) : { segments: [], basis };
    return [{ key: storeKey(o.sku, region), entry }];
  });
  const results = await cache.putMany(items, now, cause);
  return new Map(items.map((item, i) => [item.key.sku, results[i]!]));
}

/**
 * Prometheus metrics (SPEC §5.2): counters with labels, gauges and one
 * histogram, rendered in the text exposition format.
 *
 * A node runs several processes (and Cloudflare several isolates), and
 * `/metrics` gives the node's totals whichever of them answers: each isolate
 * counts locally and flushes what it counted since its last flush into a
 * hash in the edge Redis (`node-sync.ts`), and `/metrics` renders that hash.
 * The hash only ever grows, so a counter never goes backwards while the node
 * runs, even when a process restarts. Gauges are per process and combined
 * at render time (a sum, or the worst breaker state).
 */

type Labels = Record<string, string>;

/** Series suffixes already built, by the labels' values in their given order: `inc` is on every request's path. */
const built = new Map<string, string>();

function labelKey(labels: Labels): string {
  let raw = "";
  for (const k in labels) raw += `${k}\u0000${labels[k]}\u0000`;
  let key = built.get(raw);
  if (key === undefined) {
    key = buildLabelKey(labels);
    if (built.size < 10_000) built.set(raw, key);
  }
  return key;
}

function buildLabelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",")}}`;
}

/** A metric whose counts are flushed to the node's totals. */
abstract class Counting {
  protected readonly values = new Map<string, number>();
  private readonly sent = new Map<string, number>();
  abstract readonly name: string;

  /** Series (`name{labels}`) with what they counted since the last flush. */
  pending(): [series: string, delta: number][] {
    const out: [string, number][] = [];
    for (const [k, v] of this.values) {
      const d = v - (this.sent.get(k) ?? 0);
      if (d !== 0) out.push([k, d]);
    }
    return out;
  }

  /** Those deltas reached the node's totals. */
  flushed(deltas: readonly [string, number][]): void {
    for (const [k, d] of deltas) this.sent.set(k, (this.sent.get(k) ?? 0) + d);
  }

  protected add(series: string, by: number): void {
    this.values.set(series, (this.values.get(series) ?? 0) + by);
  }

  /** The family rendered from node totals (series → value). */
  abstract render(totals: ReadonlyMap<string, number>): string;
}

export class Counter extends Counting {
  private readonly initial: string[];

  constructor(
    readonly name: string,
    readonly help: string,
    /** Label sets exported at 0 before their first event. @default [{}] (an unlabelled counter) */
    initial: readonly Labels[] = [{}],
  ) {
    super();
    this.initial = initial.map((l) => `${name}${labelKey(l)}`);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.add(`${this.name}${labelKey(labels)}`, by);
  }

  /** One series of this counter, its key built once: for counts on a hot path. */
  series(labels: Labels = {}): { inc(by?: number): void } {
    const key = `${this.name}${labelKey(labels)}`;
    return { inc: (by = 1) => this.add(key, by) };
  }

  /** This isolate's own count (tests and the isolate's decisions, not the node's total). */
  get(labels: Labels = {}): number {
    return this.values.get(`${this.name}${labelKey(labels)}`) ?? 0;
  }

  render(totals: ReadonlyMap<string, number>): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    const series = new Set(this.initial);
    for (const k of totals.keys()) if (k === this.name || k.startsWith(`${this.name}{`)) series.add(k);
    for (const k of series) lines.push(`${k} ${totals.get(k) ?? 0}`);
    return lines.join("\n");
  }
}

export class Histogram extends Counting {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    super();
  }

  observe(v: number): void {
    for (const b of this.buckets) if (v <= b) this.add(`${this.name}_bucket{le="${b}"}`, 1);
    this.add(`${this.name}_bucket{le="+Inf"}`, 1);
    this.add(`${this.name}_sum`, v);
    this.add(`${this.name}_count`, 1);
  }

  render(totals: ReadonlyMap<string, number>): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const le of [...this.buckets.map(String), "+Inf"]) lines.push(`${this.name}_bucket{le="${le}"} ${totals.get(`${this.name}_bucket{le="${le}"}`) ?? 0}`);
    lines.push(`${this.name}_sum ${totals.get(`${this.name}_sum`) ?? 0}`, `${this.name}_count ${totals.get(`${this.name}_count`) ?? 0}`);
    return lines.join("\n");
  }
}

/** A per-process value; the node's value combines the live processes' values. */
export class Gauge {
  private value = 0;
  private sampler: (() => number) | null = null;
  constructor(
    readonly name: string,
    readonly help: string,
    /** How the node's value is made from its processes' values. */
    readonly combine: "sum" | "max",
  ) {}
  set(v: number): void {
    this.value = v;
  }
  /** Reads the value from `fn` whenever it is asked for, instead of what was last set. */
  sampleWith(fn: () => number): void {
    this.sampler = fn;
  }
  get(): number {
    return this.sampler ? this.sampler() : this.value;
  }
  /** The family, from the values of every live process. */
  render(values: readonly number[]): string {
    const v = values.length === 0 ? 0 : this.combine === "sum" ? values.reduce((a, b) => a + b, 0) : Math.max(...values);
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${v}`;
  }
}

export const metrics = {
  httpRequests: new Counter("edge_http_requests_total", "Requests answered, by route and status.", []),
  shed: new Counter("edge_requests_shed_total", "Requests answered 503 overloaded before any I/O: the process already had EDGE_REDIS_MAX_SESSIONS requests working with the edge Redis."),
  cacheLookups: new Counter("edge_cache_lookups_total", "Edge cache outcomes on reads.", [{ result: "hit" }, { result: "miss" }, { result: "stale" }]),
  cacheLooks: new Counter("edge_cache_looks_total", "Looks (reads with Cache-Control: only-if-cached, e.g. prewarm verify): they read no record and are not lookups, so they do not move the hit ratio.", [{ result: "hit" }, { result: "stale" }, { result: "not_cached" }]),
  cacheLayerHits: new Counter("edge_cache_layer_hits_total", "Entries found on reads, by layer: the process's memory (hot cache) or the node's shared store.", [
    { layer: "memory" },
    { layer: "store" },
  ]),
  cacheWrites: new Counter("edge_cache_writes_total", "Entries given to the node's shared store, by result (superseded: not written over a newer entry or a purge that came after its records were read, or purged before a write behind ran).", [
    { result: "ok" },
    { result: "error" },
    { result: "superseded" },
  ]),
  globalReads: new Counter("edge_global_tier_reads_total", "Entries looked up in Workers KV (the global tier behind the Cache API on Cloudflare), by result (purged: fenced by a purge since; corrupt: not an entry, treated as absent; error: KV could not be read).", [
    { result: "hit" },
    { result: "miss" },
    { result: "purged" },
    { result: "corrupt" },
    { result: "error" },
  ]),
  globalWrites: new Counter("edge_global_tier_writes_total", "Entries and purge fences written to Workers KV (the global tier), by result.", [{ result: "ok" }, { result: "error" }]),
  hotCacheEvictions: new Counter("edge_hot_cache_evictions_total", "Entries dropped from a hot cache to stay within HOT_CACHE_MAX_BYTES."),
  hotCacheInvalidations: new Counter("edge_hot_cache_invalidations_total", "Hot cache entries dropped because another process purged or re-warmed them."),
  nodeSyncs: new Counter("edge_node_syncs_total", "Exchanges that bring a process up to date with the node (change log, metrics), by result.", [{ result: "ok" }, { result: "error" }]),
  redisRoundtrips: new Counter("edge_redis_roundtrips_total", "Pipelined round trips to the edge Redis for records and aggregates."),
  redisErrors: new Counter("edge_redis_errors_total", "Failed or timed-out edge Redis round trips."),
  recordReads: new Counter("edge_redis_record_reads_total", "SKUs whose stock and price records were read from the edge Redis (a warmed key read needs none)."),
  regionalRequests: new Counter("edge_regional_requests_total", "Calls to the regional aggregator, by outcome.", [
    { outcome: "ok" },
    { outcome: "error" },
    { outcome: "timeout" },
    { outcome: "rejected" },
  ]),
  regionalBreakerTransitions: new Counter("edge_regional_breaker_transitions_total", "Regional breaker state changes, by the state entered.", []),
  prewarmBatchSeconds: new Histogram("edge_prewarm_batch_seconds", "One POST /v1/prewarm, from request to answer.", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
  computations: new Counter("edge_aggregate_computations_total", "Batches computed (edge Redis read + rules), by trigger.", [{ trigger: "prewarm" }, { trigger: "read" }]),
  prewarmSkus: new Counter("edge_prewarm_skus_total", "SKUs handled by POST /v1/prewarm, by result.", [{ result: "warmed" }, { result: "failed" }]),
} as const;

export const gauges = {
  regionalBreakerState: new Gauge("edge_regional_breaker_state", "Regional circuit breaker: 0 closed, 1 half-open, 2 open (the worst over the node's processes).", "max"),
  hotCacheBytes: new Gauge("edge_hot_cache_bytes", "Bytes held by the hot caches of the node's processes.", "sum"),
  hotCacheEntries: new Gauge("edge_hot_cache_entries", "Entries held by the hot caches of the node's processes.", "sum"),
} as const;

type GaugeName = keyof typeof gauges;

/** What this isolate counted since its last flush: the deltas, and how to mark them flushed once they reached the node's totals. */
export function pendingDeltas(): { deltas: [string, number][]; commit(): void } {
  const parts = Object.values(metrics).map((m) => [m, m.pending()] as const);
  return {
    deltas: parts.flatMap(([, d]) => d),
    commit: () => parts.forEach(([m, d]) => m.flushed(d)),
  };
}

/** This isolate's gauges, as the flat `[name, value]` pairs a process publishes. */
export function gaugeValues(): [GaugeName, number][] {
  return (Object.keys(gauges) as GaugeName[]).map((k) => [k, gauges[k].get()]);
}

/** The node's live processes, each as its published gauges. */
export type ProcessGauges = Partial<Record<GaugeName, number>>;

/** The exposition text from node totals (series → value) and the live processes' gauges. */
export function renderMetrics(totals: ReadonlyMap<string, number>, processes: readonly ProcessGauges[], header = ""): string {
  const counters = Object.values(metrics).map((m) => m.render(totals));
  const gaugeText = (Object.keys(gauges) as GaugeName[]).map((k) => gauges[k].render(processes.map((p) => p[k] ?? 0)));
  const live = `# HELP edge_node_processes Processes (isolates) of the node seen in the last minute.\n# TYPE edge_node_processes gauge\nedge_node_processes ${processes.length}`;
  return `${header}${[...counters, ...gaugeText, live].join("\n")}\n`;
}

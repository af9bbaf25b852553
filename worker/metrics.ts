/**
 * The isolate's Prometheus metrics (SPEC §5.2): counters with labels and one
 * histogram, rendered in the text exposition format. Counters are per isolate,
 * as with any per-process exporter; Prometheus sums them across nodes.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${labels[k]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",")}}`;
}

export class Counter {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${v}`);
    return lines.join("\n");
  }
}

export class Gauge {
  private value = 0;
  constructor(readonly name: string, readonly help: string) {}
  set(v: number): void {
    this.value = v;
  }
  get(): number {
    return this.value;
  }
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.value}`;
  }
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, private readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join("\n");
  }
}

export const metrics = {
  httpRequests: new Counter("edge_http_requests_total", "Requests answered, by route and status."),
  cacheLookups: new Counter("edge_cache_lookups_total", "Edge cache outcomes on reads."),
  cacheLayerHits: new Counter("edge_cache_layer_hits_total", "Entries found on reads, by layer: the isolate's memory or the Cache API."),
  cacheWrites: new Counter("edge_cache_writes_total", "Cache API writes, by result (superseded: purged or rewritten before it was written behind)."),
  hotCacheBytes: new Gauge("edge_hot_cache_bytes", "Bytes held by the isolate's hot cache."),
  redisRoundtrips: new Counter("edge_redis_roundtrips_total", "Pipelined round trips to the edge Redis."),
  redisErrors: new Counter("edge_redis_errors_total", "Failed or timed-out edge Redis round trips."),
  regionalRequests: new Counter("edge_regional_requests_total", "Calls to the regional aggregator, by outcome."),
  regionalBreakerTransitions: new Counter("edge_regional_breaker_transitions_total", "Regional breaker state changes, by the state entered."),
  regionalBreakerState: new Gauge("edge_regional_breaker_state", "Regional circuit breaker: 0 closed, 1 half-open, 2 open."),
  rulesBatchSeconds: new Histogram(
    "edge_rules_batch_seconds",
    "Duration of one Wasm rules call.",
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  ),
  computations: new Counter("edge_aggregate_computations_total", "Batches computed (edge Redis read + rules), by trigger."),
  prewarmSkus: new Counter("edge_prewarm_skus_total", "SKUs handled by POST /v1/prewarm, by result."),
} as const;

export function renderMetrics(): string {
  return `${Object.values(metrics).map((m) => m.render()).join("\n")}\n`;
}

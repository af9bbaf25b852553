/**
 * The state of prewarm runs in the scheduler's Redis, shared by every
 * scheduler process. A run is a hash of counters per node; each batch is
 * recorded by one Lua script that first adds the batch id to the run's
 * `done` set, so a batch that is retried, or re-run after a scheduler died
 * between warming and acknowledging, is counted exactly once.
 *
 *   {prefix}:runs                 sorted set of run ids by creation time
 *   {prefix}:run:{id}             hash: meta (JSON), and per node n:
 *                                 n|batches n|settled n|skus n|warmed n|fromEdge
 *                                 n|fromRegional n|failed n|code|<code> n|batchFailed
 *   {prefix}:run:{id}:done        set of settled batches (node|batch id)
 *   {prefix}:run:{id}:lat:{node}  list of batch latencies (ms)
 *   {prefix}:run:{id}:failures    list of failure samples (JSON), capped
 */
import type { Redis } from "ioredis";

/** Failure samples kept per run (the counters are exact; the samples are for reading). */
export const MAX_FAILURE_SAMPLES = 1000;
/** How long a run's records are kept. */
export const RUN_RETENTION_SECONDS = 7 * 86_400;

export interface RunMeta {
  runId: string;
  plan: string;
  trigger: string;
  createdAt: number;
  deadline: number;
  failureThreshold: number;
  totalSkus: number;
  nodes: { name: string; region: string; url: string; batches: number }[];
}

export interface BatchResult {
  runId: string;
  node: string;
  batchId: string;
  skus: number;
  warmed: number;
  fromEdge: number;
  fromRegional: number;
  /** Failed SKUs by code (per-SKU codes from the node, or a batch-level code for all of its SKUs). */
  failedByCode: Record<string, number>;
  /** Whether the whole batch failed (node down, timeout, deadline). */
  batchFailed: boolean;
  latencyMs: number;
  samples: { sku: string; code: string }[];
}

export interface NodeReport {
  name: string;
  region: string;
  batches: number;
  settled: number;
  batchesFailed: number;
  skus: number;
  warmed: number;
  fromEdge: number;
  fromRegional: number;
  failed: number;
  failedByCode: Record<string, number>;
  /** From the first batch recorded to the last (ms). */
  durationMs: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

export interface RunReport extends RunMeta {
  status: "running" | "done" | "failed";
  finishedAt: number | null;
  warmed: number;
  failed: number;
  nodes: (RunMeta["nodes"][number] & NodeReport)[];
}

const RECORD_BATCH = `
-- KEYS: done, hash, latencies, failures; ARGV: batchId, node, latency, now, retention, maxSamples, nFields, field/incr pairs..., samples...
local node = ARGV[2]
if redis.call('SADD', KEYS[1], node .. '|' .. ARGV[1]) == 0 then return 0 end
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[2], node .. '|' .. ARGV[8 + 2 * i], ARGV[9 + 2 * i])
end
local settled = redis.call('HINCRBY', KEYS[2], node .. '|settled', 1)
if settled == 1 then redis.call('HSET', KEYS[2], node .. '|firstAt', ARGV[4]) end
redis.call('HSET', KEYS[2], node .. '|lastAt', ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
for i = 8 + 2 * n, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
local all = redis.call('HINCRBY', KEYS[2], 'settled', 1)
if all == tonumber(redis.call('HGET', KEYS[2], 'batches')) then redis.call('HSET', KEYS[2], 'finishedAt', ARGV[4]) end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 1
`;

type RecordingRedis = Redis & {
  prewarmRecordBatch(done: string, hash: string, lat: string, failures: string, ...args: (string | number)[]): Promise<number>;
};

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export class RunStore {
  private readonly redis: RecordingRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    if (!("prewarmRecordBatch" in redis)) redis.defineCommand("prewarmRecordBatch", { numberOfKeys: 4, lua: RECORD_BATCH });
    this.redis = redis as RecordingRedis;
  }

  private key(runId: string, suffix = ""): string {
    return `${this.prefix}:run:${runId}${suffix}`;
  }

  /** Creates the run record once; a second call with the same id (a retried expansion) changes nothing. Returns whether it created it. */
  async create(meta: RunMeta): Promise<boolean> {
    const hash = this.key(meta.runId);
    const fields: Record<string, string | number> = { meta: JSON.stringify(meta), batches: meta.nodes.reduce((s, n) => s + n.batches, 0), settled: 0 };
    for (const n of meta.nodes) {
      fields[`${n.name}|batches`] = n.batches;
      fields[`${n.name}|settled`] = 0;
    }
    const created = await this.redis.hsetnx(hash, "meta", fields["meta"] as string);
    if (created === 0) return false;
    await this.redis
      .multi()
      .hset(hash, fields)
      .expire(hash, RUN_RETENTION_SECONDS)
      .zadd(`${this.prefix}:runs`, meta.createdAt, meta.runId)
      .exec();
    return true;
  }

  /** Records a settled batch; false when it was recorded before (a duplicate). */
  async record(r: BatchResult): Promise<boolean> {
    const fields: [string, number][] = [
      ["skus", r.skus],
      ["warmed", r.warmed],
      ["fromEdge", r.fromEdge],
      ["fromRegional", r.fromRegional],
      ["failed", Object.values(r.failedByCode).reduce((a, b) => a + b, 0)],
      ["batchFailed", r.batchFailed ? 1 : 0],
      ...Object.entries(r.failedByCode).map(([code, n]): [string, number] => [`code|${code}`, n]),
    ];
    const samples = r.samples.slice(0, 50).map((s) => JSON.stringify({ node: r.node, batch: r.batchId, ...s }));
    const res = await this.redis.prewarmRecordBatch(
      this.key(r.runId, ":done"),
      this.key(r.runId),
      this.key(r.runId, `:lat:${r.node}`),
      this.key(r.runId, ":failures"),
      r.batchId,
      r.node,
      Math.round(r.latencyMs),
      Date.now(),
      RUN_RETENTION_SECONDS,
      MAX_FAILURE_SAMPLES,
      fields.length,
      ...fields.flat(),
      ...samples,
    );
    return res === 1;
  }

  async meta(runId: string): Promise<RunMeta | null> {
    const raw = await this.redis.hget(this.key(runId), "meta");
    return raw === null ? null : (JSON.parse(raw) as RunMeta);
  }

  async report(runId: string): Promise<RunReport | null> {
    const hash = await this.redis.hgetall(this.key(runId));
    if (!hash["meta"]) return null;
    const meta = JSON.parse(hash["meta"]) as RunMeta;
    const num = (k: string): number => Number(hash[k] ?? 0);
    const nodes = await Promise.all(
      meta.nodes.map(async (n) => {
        const lat = (await this.redis.lrange(this.key(runId, `:lat:${n.name}`), 0, -1)).map(Number).sort((a, b) => a - b);
        const failedByCode: Record<string, number> = {};
        for (const [k, v] of Object.entries(hash)) {
          const prefix = `${n.name}|code|`;
          if (k.startsWith(prefix) && Number(v) > 0) failedByCode[k.slice(prefix.length)] = Number(v);
        }
        const firstAt = num(`${n.name}|firstAt`);
        return {
          ...n,
          settled: num(`${n.name}|settled`),
          batchesFailed: num(`${n.name}|batchFailed`),
          skus: num(`${n.name}|skus`),
          warmed: num(`${n.name}|warmed`),
          fromEdge: num(`${n.name}|fromEdge`),
          fromRegional: num(`${n.name}|fromRegional`),
          failed: num(`${n.name}|failed`),
          failedByCode,
          durationMs: firstAt === 0 ? 0 : num(`${n.name}|lastAt`) - meta.createdAt,
          p50Ms: percentile(lat, 50),
          p95Ms: percentile(lat, 95),
        };
      }),
    );
    const finishedAt = hash["finishedAt"] ? Number(hash["finishedAt"]) : null;
    const warmed = nodes.reduce((s, n) => s + n.warmed, 0);
    const failed = nodes.reduce((s, n) => s + n.failed, 0);
    const totalSkus = meta.totalSkus * meta.nodes.length;
    const status = finishedAt === null ? "running" : failed > meta.failureThreshold * totalSkus ? "failed" : "done";
    return { ...meta, nodes, status, finishedAt, warmed, failed };
  }

  async failures(runId: string, limit = MAX_FAILURE_SAMPLES): Promise<{ node: string; batch: string; sku: string; code: string }[]> {
    return (await this.redis.lrange(this.key(runId, ":failures"), 0, limit - 1)).map((s) => JSON.parse(s) as { node: string; batch: string; sku: string; code: string });
  }

  /** The newest runs first. */
  async list(limit = 20): Promise<string[]> {
    return this.redis.zrevrange(`${this.prefix}:runs`, 0, limit - 1);
  }
}

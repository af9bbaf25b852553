/**
 * The state of prewarm runs in the scheduler's Redis, shared by every
 * scheduler process. A run is opened once (with its deadline) before its plan
 * is expanded into batches, so a run exists, and is closed, whatever happens
 * to the process that expands it. Each batch is recorded by one Lua script
 * that first adds the batch id to the run's `done` set, so a batch that is
 * retried, re-run after a scheduler died between warming and acknowledging,
 * or closed at the deadline while in flight is counted exactly once.
 *
 *   {prefix}:runs                 sorted set of run ids by creation time
 *   {prefix}:open                 sorted set of runs not yet finished, by deadline
 *   {prefix}:run:{id}             hash: meta (JSON), expanded, finishedAt, reason,
 *                                 and per node n: n|batches n|settled n|skus n|warmed
 *                                 n|fromEdge n|fromRegional n|failed n|superseded
 *                                 n|code|<code> n|batchFailed
 *   {prefix}:run:{id}:done        set of settled batches (node|batch id)
 *   {prefix}:run:{id}:lat:{node}  list of batch latencies (ms)
 *   {prefix}:run:{id}:failures    list of failure samples (JSON), capped
 *   {prefix}:latest:{planKey}     hash: node -> creation time of the newest run of
 *                                 that plan with batches for the node (supersession)
 */
import type { SchedulerRedis } from "./redis";

/** Failure samples kept per run (the counters are exact; the samples are for reading). */
export const MAX_FAILURE_SAMPLES = 1000;
/** How long a run's records are kept. */
export const RUN_RETENTION_SECONDS = 7 * 86_400;

export interface RunMeta {
  runId: string;
  plan: string;
  /** The plan's identity for supersession: its name and what it warms (see `planKey`). */
  planKey: string;
  trigger: string;
  /** The BullMQ job that expands the run (`runs` queue). */
  jobId: string;
  createdAt: number;
  deadline: number;
  failureThreshold: number;
  /** SKUs per node; 0 until the plan is expanded. */
  totalSkus: number;
  batchSize: number;
  /** The targeted nodes with their batch counts; empty until the plan is expanded. */
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
  /** SKUs not sent because a newer run of the same plan covers them on this node. */
  superseded?: number;
  /** How long the batch waited for its node's pace (ms). */
  pacedMs?: number;
  /** The slowdown its answer caused, by reason (`breaker`, `regional_share`). */
  slowed?: Record<string, number>;
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
  superseded: number;
  failedByCode: Record<string, number>;
  /** Time batches waited for the node's pace (ms), and the slowdowns by reason. */
  pacedMs: number;
  slowed: Record<string, number>;
  /** From the run's creation to the last batch recorded (ms). */
  durationMs: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

export interface RunReport extends RunMeta {
  status: "running" | "done" | "failed";
  finishedAt: number | null;
  /** Why the run was closed before all its batches reported (deadline, expansion failure); null when they all did. */
  reason: string | null;
  warmed: number;
  failed: number;
  superseded: number;
  nodes: (RunMeta["nodes"][number] & NodeReport)[];
  /** A campaign's readiness check that started this run (its stragglers' re-warm): before, and after the re-warm. */
  readiness?: Readiness;
}

/** Per node: ready keys of all, and the stragglers by reason. */
export interface ReadinessSummary {
  at: number;
  requiredUntil: number;
  readyPct: number;
  met: boolean;
  nodes: { name: string; ready: number; skus: number; readyPct: number; stragglers: Record<string, number> }[];
}

export interface Readiness {
  plan: string;
  before: ReadinessSummary;
  after: ReadinessSummary | null;
  /** The run that re-warmed the stragglers, if any. */
  runId: string | null;
}

/** A batch of an expanded run that has not settled. */
export interface UnsettledBatch {
  node: string;
  batchId: string;
  skus: number;
}

const OPEN_RUN = `
-- KEYS: hash, runs, open; ARGV: runId, meta, createdAt, deadline, retention
if redis.call('HSETNX', KEYS[1], 'meta', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'batches', 0, 'settled', 0)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
`;

const EXPAND_RUN = `
-- KEYS: hash, open; ARGV: runId, meta, batches, now, field/value pairs...
-- returns 1 expanded now, 0 expanded before, 2 closed before it was expanded, -1 never opened
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'expanded') == 1 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'finishedAt') == 1 then return 2 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'batches', ARGV[3], 'expanded', 1)
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if tonumber(ARGV[3]) == 0 then
  redis.call('HSET', KEYS[1], 'finishedAt', ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
`;

const RECORD_BATCH = `
-- KEYS: done, hash, latencies, failures, open; ARGV: batchId, node, latency, now, retention, maxSamples, runId, nFields, field/incr pairs..., samples...
local node = ARGV[2]
if redis.call('SADD', KEYS[1], node .. '|' .. ARGV[1]) == 0 then return 0 end
local n = tonumber(ARGV[8])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[2], node .. '|' .. ARGV[9 + 2 * i], ARGV[10 + 2 * i])
end
local settled = redis.call('HINCRBY', KEYS[2], node .. '|settled', 1)
if settled == 1 then redis.call('HSET', KEYS[2], node .. '|firstAt', ARGV[4]) end
redis.call('HSET', KEYS[2], node .. '|lastAt', ARGV[4])
redis.call('RPUSH', KEYS[3], ARGV[3])
for i = 9 + 2 * n, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
local all = redis.call('HINCRBY', KEYS[2], 'settled', 1)
if all == tonumber(redis.call('HGET', KEYS[2], 'batches')) then
  redis.call('HSETNX', KEYS[2], 'finishedAt', ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[7])
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 1
`;

const CLOSE_RUN = `
-- KEYS: hash, open; ARGV: runId, now, reason
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], 'reason', ARGV[3]) end
return redis.call('HSETNX', KEYS[1], 'finishedAt', ARGV[2])
`;

const MARK_LATEST = `
-- KEYS: latest; ARGV: node, createdAt, retention
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`;

type RunRedis = SchedulerRedis & {
  prewarmOpenRun(hash: string, runs: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmExpandRun(hash: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmRecordBatch(done: string, hash: string, lat: string, failures: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmCloseRun(hash: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmMarkLatest(latest: string, ...args: (string | number)[]): Promise<number>;
};

const SCRIPTS = {
  prewarmOpenRun: { numberOfKeys: 3, lua: OPEN_RUN },
  prewarmExpandRun: { numberOfKeys: 2, lua: EXPAND_RUN },
  prewarmRecordBatch: { numberOfKeys: 5, lua: RECORD_BATCH },
  prewarmCloseRun: { numberOfKeys: 2, lua: CLOSE_RUN },
  prewarmMarkLatest: { numberOfKeys: 1, lua: MARK_LATEST },
};

export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The SKUs in batch `index` of a run's node: every batch is full but the last. */
export function batchSkus(meta: Pick<RunMeta, "totalSkus" | "batchSize">, index: number): number {
  return Math.max(0, Math.min(meta.batchSize, meta.totalSkus - index * meta.batchSize));
}

export class RunStore {
  private readonly redis: RunRedis;

  constructor(
    redis: SchedulerRedis,
    private readonly prefix: string,
  ) {
    for (const [name, def] of Object.entries(SCRIPTS)) if (!(name in redis)) redis.defineCommand(name, def);
    this.redis = redis as RunRedis;
  }

  private key(runId: string, suffix = ""): string {
    return `${this.prefix}:run:${runId}${suffix}`;
  }

  private get openKey(): string {
    return `${this.prefix}:open`;
  }

  /**
   * Opens a run before its plan is expanded: from here on it is listed, and
   * closed by its deadline whatever happens to the process expanding it. A
   * second call with the same id (a retried expansion) changes nothing.
   * Returns whether it opened it.
   */
  async open(meta: RunMeta): Promise<boolean> {
    const r = await this.redis.prewarmOpenRun(this.key(meta.runId), `${this.prefix}:runs`, this.openKey, meta.runId, JSON.stringify(meta), meta.createdAt, meta.deadline, RUN_RETENTION_SECONDS);
    return r === 1;
  }

  /**
   * Records what the expansion of an open run produced: the nodes with their
   * batch counts and the SKU count. Once only; a run with no batch at all is
   * finished here. Returns `closed` when the run was closed (at its deadline)
   * before it was expanded: then nothing may be enqueued for it.
   */
  async expanded(meta: RunMeta): Promise<"expanded" | "again" | "closed"> {
    const fields: (string | number)[] = [];
    for (const n of meta.nodes) fields.push(`${n.name}|batches`, n.batches, `${n.name}|settled`, 0);
    const total = meta.nodes.reduce((s, n) => s + n.batches, 0);
    const r = await this.redis.prewarmExpandRun(this.key(meta.runId), this.openKey, meta.runId, JSON.stringify(meta), total, Date.now(), ...fields);
    if (r === -1) throw new Error(`run ${meta.runId} was not opened before its expansion`);
    return r === 1 ? "expanded" : r === 0 ? "again" : "closed";
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
      ["superseded", r.superseded ?? 0],
      ["pacedMs", Math.round(r.pacedMs ?? 0)],
      ...Object.entries(r.failedByCode).map(([code, n]): [string, number] => [`code|${code}`, n]),
      ...Object.entries(r.slowed ?? {}).map(([why, n]): [string, number] => [`slowed|${why}`, n]),
    ];
    const samples = r.samples.slice(0, 50).map((s) => JSON.stringify({ node: r.node, batch: r.batchId, ...s }));
    const res = await this.redis.prewarmRecordBatch(
      this.key(r.runId, ":done"),
      this.key(r.runId),
      this.key(r.runId, `:lat:${r.node}`),
      this.key(r.runId, ":failures"),
      this.openKey,
      r.batchId,
      r.node,
      Math.round(r.latencyMs),
      Date.now(),
      RUN_RETENTION_SECONDS,
      MAX_FAILURE_SAMPLES,
      r.runId,
      fields.length,
      ...fields.flat(),
      ...samples,
    );
    return res === 1;
  }

  /** Notes why a run is being closed, before its last batches are settled: whoever sees it finished sees why. */
  async setReason(runId: string, reason: string): Promise<void> {
    await this.redis.hsetnx(this.key(runId), "reason", reason);
  }

  /** Closes a run with the reason it did not finish by itself (none: it did); false when it had finished already. */
  async close(runId: string, reason: string): Promise<boolean> {
    return (await this.redis.prewarmCloseRun(this.key(runId), this.openKey, runId, Date.now(), reason)) === 1;
  }

  /** How many runs are open. */
  async openCount(): Promise<number> {
    return this.redis.zcard(this.openKey);
  }

  /** Runs still open whose deadline is at or before `at`. */
  async overdue(at: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.openKey, "-inf", at, "LIMIT", 0, limit);
  }

  /** Whether the run's plan was expanded into batches. */
  async isExpanded(runId: string): Promise<boolean> {
    return (await this.redis.hexists(this.key(runId), "expanded")) === 1;
  }

  /** The batches of an expanded run that have not settled, with their SKU counts. */
  async unsettled(meta: RunMeta): Promise<UnsettledBatch[]> {
    const done = new Set(await this.redis.smembers(this.key(meta.runId, ":done")));
    const out: UnsettledBatch[] = [];
    for (const n of meta.nodes) {
      for (let i = 0; i < n.batches; i++) {
        const batchId = `${meta.runId}.${i}`;
        if (!done.has(`${n.name}|${batchId}`)) out.push({ node: n.name, batchId, skus: batchSkus(meta, i) });
      }
    }
    return out;
  }

  /** Notes that a run created at `createdAt` has enqueued its batches of `planKey` for `node`. */
  async markLatest(planKey: string, node: string, createdAt: number): Promise<void> {
    await this.redis.prewarmMarkLatest(`${this.prefix}:latest:${planKey}`, node, createdAt, RUN_RETENTION_SECONDS);
  }

  /** The creation time of the newest run of `planKey` with batches for `node` (0: none). */
  async latest(planKey: string, node: string): Promise<number> {
    return Number((await this.redis.hget(`${this.prefix}:latest:${planKey}`, node)) ?? 0);
  }

  async meta(runId: string): Promise<RunMeta | null> {
    const raw = await this.redis.hget(this.key(runId), "meta");
    return raw === null ? null : (JSON.parse(raw) as RunMeta);
  }

  /**
   * A run's report. Without `latencies` (a watcher's progress polls) it reads
   * the run's one hash only, and the batch latency percentiles are null: one
   * command however many nodes the run has.
   */
  async report(runId: string, o: { latencies?: boolean } = {}): Promise<RunReport | null> {
    const hash = await this.redis.hgetall(this.key(runId));
    if (!hash["meta"]) return null;
    const meta = JSON.parse(hash["meta"]) as RunMeta;
    const num = (k: string): number => Number(hash[k] ?? 0);
    // The per-code fields of every node (`n|code|<code>`, `n|slowed|<reason>`), in one pass over the hash.
    const counted = new Map<string, { code: Record<string, number>; slowed: Record<string, number> }>();
    for (const [k, v] of Object.entries(hash)) {
      const [node, kind, what] = k.split("|");
      if ((kind !== "code" && kind !== "slowed") || what === undefined || !(Number(v) > 0)) continue;
      let c = counted.get(node!);
      if (!c) counted.set(node!, (c = { code: {}, slowed: {} }));
      c[kind][what] = Number(v);
    }
    const nodes = await Promise.all(
      meta.nodes.map(async (n) => {
        const lat = o.latencies === false ? [] : (await this.redis.lrange(this.key(runId, `:lat:${n.name}`), 0, -1)).map(Number).sort((a, b) => a - b);
        const failedByCode = counted.get(n.name)?.code ?? {};
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
          superseded: num(`${n.name}|superseded`),
          failedByCode,
          pacedMs: num(`${n.name}|pacedMs`),
          slowed: counted.get(n.name)?.slowed ?? {},
          durationMs: firstAt === 0 ? 0 : num(`${n.name}|lastAt`) - meta.createdAt,
          p50Ms: percentile(lat, 50),
          p95Ms: percentile(lat, 95),
        };
      }),
    );
    const finishedAt = hash["finishedAt"] ? Number(hash["finishedAt"]) : null;
    const warmed = nodes.reduce((s, n) => s + n.warmed, 0);
    const failed = nodes.reduce((s, n) => s + n.failed, 0);
    const superseded = nodes.reduce((s, n) => s + n.superseded, 0);
    const totalSkus = meta.totalSkus * meta.nodes.length;
    // A run closed before its plan was expanded warmed nothing it was asked to: failed, whatever its threshold.
    const status = finishedAt === null ? "running" : hash["expanded"] === undefined || failed > meta.failureThreshold * totalSkus ? "failed" : "done";
    return { ...meta, nodes, status, finishedAt, reason: hash["reason"] ?? null, warmed, failed, superseded, ...(hash["readiness"] ? { readiness: JSON.parse(hash["readiness"]) as Readiness } : {}) };
  }

  async failures(runId: string, limit = MAX_FAILURE_SAMPLES): Promise<{ node: string; batch: string; sku: string; code: string }[]> {
    return (await this.redis.lrange(this.key(runId, ":failures"), 0, limit - 1)).map((s) => JSON.parse(s) as { node: string; batch: string; sku: string; code: string });
  }

  /** Keeps a campaign's latest readiness check, and puts it in the run that re-warmed its stragglers. */
  async saveReadiness(r: Readiness): Promise<void> {
    const m = this.redis.multi().set(`${this.prefix}:readiness:${r.plan}`, JSON.stringify(r), "EX", RUN_RETENTION_SECONDS);
    if (r.runId !== null) m.hset(this.key(r.runId), "readiness", JSON.stringify(r));
    await m.exec();
  }

  /** A plan's latest readiness check, if any. */
  async readiness(plan: string): Promise<Readiness | null> {
    const raw = await this.redis.get(`${this.prefix}:readiness:${plan}`);
    return raw === null ? null : (JSON.parse(raw) as Readiness);
  }

  /** The newest runs first. */
  async list(limit = 20): Promise<string[]> {
    return this.redis.zrevrange(`${this.prefix}:runs`, 0, limit - 1);
  }
}

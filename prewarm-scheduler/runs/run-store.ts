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
 *                                 n|code|<code> n|batchFailed; while a batch is in
 *                                 flight, n|claim|<batch id> -> the SKU batch it sends
 *   {prefix}:run:{id}:done        set of settled batches (node|batch id) (until it finishes)
 *   {prefix}:run:{id}:lat:{node}  list of batch latencies (ms) (until it finishes: then
 *                                 n|p50 n|p95 in the hash)
 *   {prefix}:run:{id}:failures    list of failure samples (JSON), capped
 *   {prefix}:run:{id}:skus        list of the run's SKUs, once for all its nodes (until it finishes)
 *   {prefix}:run:{id}:todo:{node} sorted set of the SKU batches (their index) no batch job
 *                                 of the node has taken yet, by when each was last sent to
 *                                 the node by a run of the plan (until the run finishes)
 *   {prefix}:latest:{planKey}     hash: node -> creation time of the newest run of that plan
 *                                 with batches for the node (supersession); node|i -> when
 *                                 SKU batch i was last sent to the node; run -> the newest run
 *
 * A run's batch job does not carry SKUs: when it is about to send, it takes
 * (claims) the SKU batch of its run that was sent to its node longest ago,
 * so a refresh that supersedes an older run sends first what that run left
 * unsent (see `claim`). Retention: the newest `retention.runs` runs are kept,
 * none past `retention.maxAgeDays` (open runs are never dropped); each key
 * also expires after that age. Trimmed when a run opens and by the workers'
 * sweep, one script for all of a run's keys, so a reader sees a whole run or none.
 */
import { randomUUID } from "node:crypto";
import type { SchedulerRedis } from "../redis/redis";

/** Failure samples kept per run (the counters are exact; the samples are for reading). */
export const MAX_FAILURE_SAMPLES = 1000;

/** What the run store keeps: the newest `runs` runs, none older than `maxAgeMs`. */
export interface RunRetention {
  runs: number;
  maxAgeMs: number;
}

/** The defaults of the config's `retention` (1,000 runs, 7 days). */
export const DEFAULT_RUN_RETENTION: RunRetention = { runs: 1000, maxAgeMs: 7 * 86_400_000 };

/** Runs dropped at most per trim (one script call), so a trim never holds Redis long; the next one goes on. */
const TRIM_BATCH = 100;

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
  /**
   * `superseded`: finished with no more failures than its threshold, but a
   * newer run of the plan took over SKUs this run had not sent yet
   * (`superseded` of them): they were not warmed by this run.
   */
  status: "running" | "done" | "superseded" | "failed";
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
  /** Its position among the node's batch jobs (not the SKU batch it sends: see `claim`). */
  slot: number;
}

/** A batch job of a run, as the run store knows it. */
export interface BatchRef {
  runId: string;
  node: string;
  batchId: string;
  slot: number;
  planKey: string;
}

/** Lua helpers of the scripts below: a run's keys are named from its hash's key (they share its hash tag on a cluster). */
const DROP_WORK = `
-- A finished run keeps only what its report reads: its hash (each node's latency percentiles
-- folded into it) and its failure samples. Every batch has settled, so what comes later is a
-- duplicate, refused without its done set.
local function dropWork(hash)
  redis.call('DEL', hash .. ':skus', hash .. ':done')
  local meta = redis.call('HGET', hash, 'meta')
  if not meta then return end
  for _, n in ipairs(cjson.decode(meta).nodes) do
    redis.call('DEL', hash .. ':todo:' .. n.name)
    local lat = redis.call('LRANGE', hash .. ':lat:' .. n.name, 0, -1)
    if #lat > 0 then
      for i = 1, #lat do lat[i] = tonumber(lat[i]) end
      table.sort(lat)
      -- as percentile(): the ceil(p% of n)-th smallest
      redis.call('HSET', hash, n.name .. '|p50', lat[math.max(1, math.ceil(0.5 * #lat))], n.name .. '|p95', lat[math.max(1, math.ceil(0.95 * #lat))])
    end
    redis.call('DEL', hash .. ':lat:' .. n.name)
  end
end
`;

const TRIM = `
local function dropRun(hash, id, latestPrefix)
  local meta = redis.call('HGET', hash, 'meta')
  if meta then
    local m = cjson.decode(meta)
    for _, n in ipairs(m.nodes) do redis.call('DEL', hash .. ':lat:' .. n.name, hash .. ':todo:' .. n.name) end
    -- The plan's supersession state goes with its newest run: no kept run of the plan is newer.
    if m.planKey and redis.call('HGET', latestPrefix .. m.planKey, 'run') == id then redis.call('DEL', latestPrefix .. m.planKey) end
  end
  redis.call('DEL', hash, hash .. ':done', hash .. ':failures', hash .. ':skus')
end
-- Drops the oldest finished runs past the newest \`keep\`, and those created before \`cutoff\`.
local function trim(runs, open, keep, cutoff, runPrefix, latestPrefix, most)
  local excess = redis.call('ZCARD', runs) - keep
  local dropped = 0
  local oldest = redis.call('ZRANGE', runs, 0, most - 1, 'WITHSCORES')
  for j = 1, #oldest, 2 do
    local id, at = oldest[j], tonumber(oldest[j + 1])
    if (j - 1) / 2 >= excess and at >= cutoff then break end
    if not redis.call('ZSCORE', open, id) then
      dropRun(runPrefix .. id, id, latestPrefix)
      redis.call('ZREM', runs, id)
      dropped = dropped + 1
    end
  end
  return dropped
end
`;

const OPEN_RUN = `
-- KEYS: hash, runs, open; ARGV: runId, meta, createdAt, deadline, retention s, keep, cutoff, run prefix, latest prefix, most
${TRIM}
if redis.call('HSETNX', KEYS[1], 'meta', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'batches', 0, 'settled', 0)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
trim(KEYS[2], KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9], tonumber(ARGV[10]))
return 1
`;

const TRIM_RUNS = `
-- KEYS: runs, open; ARGV: keep, cutoff, run prefix, latest prefix, most
${TRIM}
return trim(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]))
`;

const EXPAND_RUN = `
-- KEYS: hash, open, staged SKUs, latest; ARGV: runId, meta, batches, now, retention s, field/value pairs...
-- returns 1 expanded now, 0 expanded before, 2 closed before it was expanded, -1 never opened
${DROP_WORK}
local function refused(r) redis.call('DEL', KEYS[3]) return r end
if redis.call('EXISTS', KEYS[1]) == 0 then return refused(-1) end
if redis.call('HEXISTS', KEYS[1], 'expanded') == 1 then return refused(0) end
if redis.call('HEXISTS', KEYS[1], 'finishedAt') == 1 then return refused(2) end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'batches', ARGV[3], 'expanded', 1)
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[1] .. ':skus')
  redis.call('EXPIRE', KEYS[1] .. ':skus', ARGV[5])
end
-- Each node's SKU batches, the one sent to it longest ago by a run of the plan first.
for _, n in ipairs(cjson.decode(ARGV[2]).nodes) do
  local todo = KEYS[1] .. ':todo:' .. n.name
  for i = 0, n.batches - 1 do redis.call('ZADD', todo, tonumber(redis.call('HGET', KEYS[4], n.name .. '|' .. i) or '0'), i) end
  redis.call('EXPIRE', todo, ARGV[5])
end
if tonumber(ARGV[3]) == 0 then
  redis.call('HSET', KEYS[1], 'finishedAt', ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[1])
  dropWork(KEYS[1])
end
return 1
`;

const CLAIM_BATCH = `
-- KEYS: hash, done, todo, latest; ARGV: node, batchId, slot, sent at (0: not sending), retention s
-- returns the SKU batch (its index) the batch job sends, the same each time it is asked;
-- -1 when the batch has settled, or its run is gone. The claim is kept as "i", or once
-- noted as sent, "i:sent at:the mark it replaced" (for UNSENT_BATCH).
if redis.call('SISMEMBER', KEYS[2], ARGV[1] .. '|' .. ARGV[2]) == 1 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 or redis.call('HEXISTS', KEYS[1], 'finishedAt') == 1 then return -1 end
local f = ARGV[1] .. '|claim|' .. ARGV[2]
local c = redis.call('HGET', KEYS[1], f)
local i, prev
if c then
  i = string.match(c, '^%d+')
  prev = string.match(c, '^%d+:%d+:(%d+)$')
else
  -- A run expanded without its SKU batches listed sends its own.
  i = redis.call('ZPOPMIN', KEYS[3])[1] or ARGV[3]
  redis.call('HSET', KEYS[1], f, i)
end
if ARGV[4] ~= '0' then
  local mark = ARGV[1] .. '|' .. i
  prev = prev or redis.call('HGET', KEYS[4], mark) or '0'
  redis.call('HSET', KEYS[4], mark, ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
  redis.call('HSET', KEYS[1], f, i .. ':' .. ARGV[4] .. ':' .. prev)
end
return tonumber(i)
`;

const UNSENT_BATCH = `
-- KEYS: hash, latest; ARGV: node, batchId
-- A claimed batch that did not reach its node after all: its sent mark goes back to what it was,
-- unless a newer run has marked it since.
local c = redis.call('HGET', KEYS[1], ARGV[1] .. '|claim|' .. ARGV[2])
if not c then return 0 end
local i, at, prev = string.match(c, '^(%d+):(%d+):(%d+)$')
if not i then return 0 end
local mark = ARGV[1] .. '|' .. i
if redis.call('HGET', KEYS[2], mark) ~= at then return 0 end
if prev == '0' then redis.call('HDEL', KEYS[2], mark) else redis.call('HSET', KEYS[2], mark, prev) end
return 1
`;

const RECORD_BATCH = `
-- KEYS: done, hash, latencies, failures, open; ARGV: batchId, node, latency, now, retention, maxSamples, runId, nFields, field/incr pairs..., samples...
${DROP_WORK}
local node = ARGV[2]
if redis.call('HEXISTS', KEYS[2], 'finishedAt') == 1 then return 0 end
if redis.call('SADD', KEYS[1], node .. '|' .. ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], node .. '|claim|' .. ARGV[1])
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
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
local all = redis.call('HINCRBY', KEYS[2], 'settled', 1)
if all == tonumber(redis.call('HGET', KEYS[2], 'batches')) then
  redis.call('HSETNX', KEYS[2], 'finishedAt', ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[7])
  dropWork(KEYS[2])
end
return 1
`;

const CLOSE_RUN = `
-- KEYS: hash, open; ARGV: runId, now, reason
${DROP_WORK}
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], 'reason', ARGV[3]) end
local r = redis.call('HSETNX', KEYS[1], 'finishedAt', ARGV[2])
dropWork(KEYS[1])
return r
`;

const MARK_LATEST = `
-- KEYS: latest; ARGV: node, createdAt, retention, runId
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if tonumber(ARGV[2]) >= tonumber(redis.call('HGET', KEYS[1], 'runAt') or '0') then redis.call('HSET', KEYS[1], 'run', ARGV[4], 'runAt', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`;

type RunRedis = SchedulerRedis & {
  prewarmOpenRun(hash: string, runs: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmTrimRuns(runs: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmExpandRun(hash: string, open: string, staged: string, latest: string, ...args: (string | number)[]): Promise<number>;
  prewarmClaimBatch(hash: string, done: string, todo: string, latest: string, ...args: (string | number)[]): Promise<number>;
  prewarmUnsentBatch(hash: string, latest: string, ...args: (string | number)[]): Promise<number>;
  prewarmRecordBatch(done: string, hash: string, lat: string, failures: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmCloseRun(hash: string, open: string, ...args: (string | number)[]): Promise<number>;
  prewarmMarkLatest(latest: string, ...args: (string | number)[]): Promise<number>;
};

const SCRIPTS = {
  prewarmOpenRun: { numberOfKeys: 3, lua: OPEN_RUN },
  prewarmTrimRuns: { numberOfKeys: 2, lua: TRIM_RUNS },
  prewarmExpandRun: { numberOfKeys: 4, lua: EXPAND_RUN },
  prewarmClaimBatch: { numberOfKeys: 4, lua: CLAIM_BATCH },
  prewarmUnsentBatch: { numberOfKeys: 2, lua: UNSENT_BATCH },
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
  private readonly retentionSeconds: number;

  constructor(
    redis: SchedulerRedis,
    private readonly prefix: string,
    private readonly retention: RunRetention = DEFAULT_RUN_RETENTION,
  ) {
    for (const [name, def] of Object.entries(SCRIPTS)) if (!(name in redis)) redis.defineCommand(name, def);
    this.redis = redis as RunRedis;
    this.retentionSeconds = Math.max(1, Math.ceil(retention.maxAgeMs / 1000));
  }

  private key(runId: string, suffix = ""): string {
    return `${this.prefix}:run:${runId}${suffix}`;
  }

  private get openKey(): string {
    return `${this.prefix}:open`;
  }

  private latestKey(planKey: string): string {
    return `${this.prefix}:latest:${planKey}`;
  }

  /** The arguments of a trim at `now`: keep, cutoff, the key prefixes, the most runs dropped. */
  private trimArgs(now: number): (string | number)[] {
    return [this.retention.runs, now - this.retention.maxAgeMs, this.key(""), this.latestKey(""), TRIM_BATCH];
  }

  /**
   * Opens a run before its plan is expanded: from here on it is listed, and
   * closed by its deadline whatever happens to the process expanding it. A
   * second call with the same id (a retried expansion) changes nothing.
   * Returns whether it opened it. Drops the runs past the retention.
   */
  async open(meta: RunMeta): Promise<boolean> {
    const r = await this.redis.prewarmOpenRun(this.key(meta.runId), `${this.prefix}:runs`, this.openKey, meta.runId, JSON.stringify(meta), meta.createdAt, meta.deadline, this.retentionSeconds, ...this.trimArgs(Date.now()));
    return r === 1;
  }

  /** Drops the finished runs past the retention (the oldest first, at most 100 a call); returns how many. */
  async trim(now = Date.now()): Promise<number> {
    return this.redis.prewarmTrimRuns(`${this.prefix}:runs`, this.openKey, ...this.trimArgs(now));
  }

  /**
   * Records what the expansion of an open run produced: the nodes with their
   * batch counts, the SKU count and the SKUs themselves (once, for all the
   * nodes). Once only; a run with no batch at all is finished here. Returns
   * `closed` when the run was closed (at its deadline) before it was
   * expanded: then nothing may be enqueued for it.
   */
  async expanded(meta: RunMeta, skus: readonly string[] = []): Promise<"expanded" | "again" | "closed"> {
    const fields: (string | number)[] = [];
    for (const n of meta.nodes) fields.push(`${n.name}|batches`, n.batches, `${n.name}|settled`, 0);
    const total = meta.nodes.reduce((s, n) => s + n.batches, 0);
    // The SKUs go to a key of this attempt first, renamed by the script only if this expansion is the first.
    const staged = this.key(meta.runId, `:skus:${randomUUID().slice(0, 8)}`);
    if (skus.length > 0 && !(await this.isExpanded(meta.runId))) {
      for (let i = 0; i < skus.length; i += 10_000) await this.redis.rpush(staged, ...skus.slice(i, i + 10_000));
      await this.redis.expire(staged, 3600);
    }
    const r = await this.redis.prewarmExpandRun(this.key(meta.runId), this.openKey, staged, this.latestKey(meta.planKey), meta.runId, JSON.stringify(meta), total, Date.now(), this.retentionSeconds, ...fields);
    if (r === -1) throw new Error(`run ${meta.runId} was not opened before its expansion`);
    return r === 1 ? "expanded" : r === 0 ? "again" : "closed";
  }

  /**
   * The SKU batch (its index) a batch job sends: the first time it is asked,
   * the one of its run and node that was sent to the node longest ago by any
   * run of the plan (never sent: first), then the same one however often
   * the job is tried. With `sentAt`, notes that it is being sent now. Null
   * when the batch has settled (a job re-added or re-run after it did) or its
   * run is gone: nothing to send or record.
   */
  async claim(b: BatchRef, sentAt: number | null): Promise<number | null> {
    const i = await this.redis.prewarmClaimBatch(this.key(b.runId), this.key(b.runId, ":done"), this.key(b.runId, `:todo:${b.node}`), this.latestKey(b.planKey), b.node, b.batchId, b.slot, sentAt ?? 0, this.retentionSeconds);
    return i < 0 ? null : i;
  }

  /** The SKUs of a run's SKU batch `index` (empty once the run has finished). */
  async skusOf(runId: string, batchSize: number, index: number): Promise<string[]> {
    return this.redis.lrange(this.key(runId, ":skus"), index * batchSize, (index + 1) * batchSize - 1);
  }

  /**
   * Notes that the SKU batch a batch job claimed to send did not reach its
   * node after all (call it before recording the batch): the batch counts as
   * sent when it was sent before, so the plan's next runs send it in its turn.
   */
  async unsent(b: BatchRef): Promise<void> {
    await this.redis.prewarmUnsentBatch(this.key(b.runId), this.latestKey(b.planKey), b.node, b.batchId);
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
    const counted = fields.filter(([, n]) => n !== 0); // a count never incremented reads as 0, and costs no field in a kept run
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
      this.retentionSeconds,
      MAX_FAILURE_SAMPLES,
      r.runId,
      counted.length,
      ...counted.flat(),
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

  /** The batches of an expanded run that have not settled. */
  async unsettled(meta: RunMeta): Promise<UnsettledBatch[]> {
    const done = new Set(await this.redis.smembers(this.key(meta.runId, ":done")));
    const out: UnsettledBatch[] = [];
    for (const n of meta.nodes) {
      for (let i = 0; i < n.batches; i++) {
        const batchId = `${meta.runId}.${i}`;
        if (!done.has(`${n.name}|${batchId}`)) out.push({ node: n.name, batchId, slot: i });
      }
    }
    return out;
  }

  /** Notes that run `runId`, created at `createdAt`, has enqueued its batches of `planKey` for `node`. */
  async markLatest(planKey: string, node: string, createdAt: number, runId: string): Promise<void> {
    await this.redis.prewarmMarkLatest(this.latestKey(planKey), node, createdAt, this.retentionSeconds, runId);
  }

  /** The creation time of the newest run of `planKey` with batches for `node` (0: none). */
  async latest(planKey: string, node: string): Promise<number> {
    return Number((await this.redis.hget(this.latestKey(planKey), node)) ?? 0);
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
    // A finished run has its latency percentiles in its hash. A running one's latencies are read with
    // a check that the run is still there, in one transaction: a run dropped in between is no run.
    const lats = new Map<string, number[]>();
    const folded = hash["finishedAt"] !== undefined;
    if (o.latencies !== false && meta.nodes.length > 0 && !folded) {
      const m = this.redis.multi().exists(this.key(runId));
      for (const n of meta.nodes) m.lrange(this.key(runId, `:lat:${n.name}`), 0, -1);
      const [exists, ...lists] = (await m.exec()) ?? [];
      if (exists?.[1] !== 1) return null;
      meta.nodes.forEach((n, i) => lats.set(n.name, ((lists[i]?.[1] as string[] | undefined) ?? []).map(Number).sort((a, b) => a - b)));
    }
    const nodes = meta.nodes.map((n) => {
      const lat = lats.get(n.name) ?? [];
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
        p50Ms: folded ? (hash[`${n.name}|p50`] === undefined ? null : num(`${n.name}|p50`)) : percentile(lat, 50),
        p95Ms: folded ? (hash[`${n.name}|p95`] === undefined ? null : num(`${n.name}|p95`)) : percentile(lat, 95),
      };
    });
    const finishedAt = hash["finishedAt"] ? Number(hash["finishedAt"]) : null;
    const warmed = nodes.reduce((s, n) => s + n.warmed, 0);
    const failed = nodes.reduce((s, n) => s + n.failed, 0);
    const superseded = nodes.reduce((s, n) => s + n.superseded, 0);
    const totalSkus = meta.totalSkus * meta.nodes.length;
    // A run closed before its plan was expanded warmed nothing it was asked to: failed, whatever its threshold.
    const status = finishedAt === null ? "running" : hash["expanded"] === undefined || failed > meta.failureThreshold * totalSkus ? "failed" : superseded > 0 ? "superseded" : "done";
    return { ...meta, nodes, status, finishedAt, reason: hash["reason"] ?? null, warmed, failed, superseded, ...(hash["readiness"] ? { readiness: JSON.parse(hash["readiness"]) as Readiness } : {}) };
  }

  async failures(runId: string, limit = MAX_FAILURE_SAMPLES): Promise<{ node: string; batch: string; sku: string; code: string }[]> {
    return (await this.redis.lrange(this.key(runId, ":failures"), 0, limit - 1)).map((s) => JSON.parse(s) as { node: string; batch: string; sku: string; code: string });
  }

  /** Keeps a campaign's latest readiness check, and puts it in the run that re-warmed its stragglers. */
  async saveReadiness(r: Readiness): Promise<void> {
    const m = this.redis.multi().set(`${this.prefix}:readiness:${r.plan}`, JSON.stringify(r), "EX", this.retentionSeconds);
    if (r.runId !== null) m.hset(this.key(r.runId), "readiness", JSON.stringify(r)).expire(this.key(r.runId), this.retentionSeconds);
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

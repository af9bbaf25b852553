/**
 * The fan-out engine: BullMQ queues in the scheduler's Redis, shared by every
 * scheduler process. A run job (queue `runs`) opens the run, expands its plan
 * into batches and enqueues them, every node's interleaved, on one queue
 * (`batches`). Each scheduler process works it with one BullMQ worker of
 * `concurrency` slots, so its Redis connections do not grow with the fleet.
 * Per-node isolation is kept by per-node leases in Redis (at most
 * `concurrencyPerNode` batches in flight per node, over all processes) and
 * the node's pace: a batch whose node is busy or paced goes back to the queue
 * as a delayed job, freeing its slot, so a slow or dead node holds up only its
 * own batches. Job ids are derived from the run id and the node, so an
 * expansion that is retried enqueues nothing twice, and the run store counts
 * each batch once however often it is tried.
 *
 * A batch job carries no SKUs: the run's SKUs are kept once in the run store,
 * and a job about to send takes the SKU batch of its run that its node got
 * longest ago from any run of the plan (`RunStore.claim`). A campaign refresh
 * that supersedes an older run (its unsent batches are recorded `superseded`)
 * thus sends first what that run left unsent, and a pass longer than
 * `refreshEvery` rotates over the plan's SKUs instead of starting again at the
 * first batch each time. A completed batch job is dropped at once (its run
 * store record is what the report reads); failed ones are kept, bounded, for
 * the dashboard and the deadline sweep.
 *
 * Every run ends by its deadline: a batch or expansion that fails for good,
 * for whatever reason (a node's answer, a scheduler error, a job stalled past
 * its limit), is recorded by the worker that fails it, and whatever no
 * process records (a process killed between steps) is closed by the deadline
 * sweep of any process running workers, or by the CLI watching the run.
 */
import { createHash } from "node:crypto";
import { DelayedError, Job, Queue, UnrecoverableError, Worker, type JobsOptions, type KeepJobs } from "bullmq";
import { within } from "../redis/within";
import { describeRedis, type EdgeNodeConfig, type SchedulerConfig } from "../config/config";
import { isBatchError, postBatch } from "../../contract/prewarm-client";
import { mergeTags } from "../../contract/tags";
import { Pacer, slowdownReason } from "./pacing";
import { connectRedis, type SchedulerRedis } from "../redis/redis";
import { asNode, NodeRegistry, type NodeState } from "../fleet/registry";
import { targetNodes, type Plan } from "../plans/plan";
import { batchSkus, RunStore, type BatchRef, type BatchResult, type ReadinessSummary, type RunMeta } from "./run-store";
import { verifyPlan, type VerifyReport } from "../fleet/verify";
import { FleetPurge } from "../fleet/purge";
import { isInvalidFileError } from "../config/schema-errors";
import { resolveSkus, SkuSourceError } from "../plans/sku-source";

export interface RunJobData {
  plan: Plan;
  /** Set for runs started by hand or by a campaign; cron runs derive it from their fire time. */
  runId?: string;
  trigger: string;
}

export interface BatchJobData extends BatchRef {
  region: string;
  /** SKUs per SKU batch of the run (the SKUs are in the run store: see `RunStore.claim`). */
  batchSize: number;
  ttl?: number;
  ttlJitter?: number;
  /** Tags the node adds to every aggregate of the batch (SPEC §9): `plan:{name}` and the plan's own (`runTags`). */
  tags?: string[];
  deadline: number;
  /** The run's creation time: a newer run of the same plan (`planKey`) supersedes this batch. */
  createdAt: number;
}

/** The scheduler's Redis did not answer in time: commands fail with this rather than wait forever. */
export class SchedulerRedisError extends Error {
  override readonly name = "SchedulerRedisError";
}

/** How long and how many finished jobs are kept, per queue and state (BullMQ's removeOnComplete / removeOnFail). */
export function keptJobs(cfg: Pick<SchedulerConfig, "retention">): KeepJobs {
  return { age: Math.ceil(cfg.retention.maxAgeDays * 86_400), count: cfg.retention.jobs };
}

/** Events kept in each queue's BullMQ event stream (nothing of the scheduler reads them; BullMQ's default is 10,000). */
const QUEUE_EVENTS = 1000;
/** How often a process with workers drops runs past their age and forgets long-silent nodes. */
const RETENTION_EVERY_MS = 60_000;

/** `20261111T000000123Z`: a sortable, id-safe instant. */
export function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, "");
}

export function newRunId(planName: string, at = Date.now()): string {
  return `${planName}-${stamp(at)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** The BullMQ job id of a node's batch (the run store names the batch `${runId}.${i}` per node). */
export function batchJobId(node: string, batchId: string): string {
  return `${batchId}@${node}`;
}

/** How long a scheduler process reuses its read of the node registry. */
const REGISTRY_CACHE_MS = 1000;

/** How long a batch waits before it tries again for a slot of a busy node (ms, jittered). */
const BUSY_RETRY_MS = 100;

/**
 * A plan's identity for supersession: its name and what it warms. A newer run
 * of the same plan (a campaign refresh, a re-run) makes an older run's unsent
 * batches redundant; a plan edited under the same name (other SKUs, TTL) does not.
 */
export function planKey(plan: Plan): string {
  const what = createHash("sha256").update(JSON.stringify({ skus: plan.skus, ttl: plan.ttl ?? null, ttlJitter: plan.ttlJitter })).digest("hex").slice(0, 16);
  return `${plan.name}.${what}`;
}

/** The tags a run of `plan` puts on every aggregate it warms (SPEC §9): `plan:{name}` and the plan's own `tags`. */
export function runTags(plan: Pick<Plan, "name" | "tags">): string[] {
  return mergeTags([`plan:${plan.name}`], plan.tags ?? []);
}

/** A run is closed this long after its deadline: the batches in flight at the deadline (their requests end by it) get to record their answers. */
export const CLOSE_GRACE_MS = 1000;

/** How long closing an engine waits for its workers and queues to close before it drops their connections. */
const ENGINE_CLOSE_MS = 10_000;
/** How often a process with workers sends again the purges due for a retry. */
const REPLAY_EVERY_MS = 250;
/** How often a process with workers looks for runs past their deadline. */
const SWEEP_EVERY_MS = 1000;

/** The failure code of a batch job that BullMQ failed without our processor deciding it. */
function jobFailureCode(reason: string): string {
  return /stalled more than allowable limit/.test(reason) ? "stalled" : "scheduler_error";
}

/** A verify report as a campaign's readiness keeps it. */
export function summarize(r: VerifyReport): ReadinessSummary {
  return { at: r.at, requiredUntil: r.requiredUntil, readyPct: r.readyPct, met: r.met, nodes: r.nodes.map((n) => ({ name: n.name, ready: n.ready, skus: n.skus, readyPct: n.readyPct, stragglers: n.stragglers })) };
}

export class Engine {
  readonly redis: SchedulerRedis;
  readonly store: RunStore;
  readonly runs: Queue<RunJobData>;
  private readonly pacer: Pacer;
  readonly registry: NodeRegistry;
  /** Fleet purges: sent, recorded, and sent again to the nodes that did not confirm (`purge.ts`). */
  readonly purges: FleetPurge;
  /** The registry as last read (at most REGISTRY_CACHE_MS old): a batch does not read the whole registry. */
  private registryCache: { at: number; nodes: Promise<NodeState[]> } | null = null;
  /** A connection whose commands fail within `redisTimeoutMs` while Redis is away, rather than wait for it. */
  private readonly probe: SchedulerRedis;
  readonly batches: Queue<BatchJobData>;
  private readonly workers: Worker[] = [];
  /** How many finished jobs the queues keep. */
  readonly kept: KeepJobs;
  private sweeper: NodeJS.Timeout | undefined;
  private replayer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(readonly cfg: SchedulerConfig) {
    // BullMQ's blocking commands need ioredis to retry forever rather than fail a request.
    this.redis = connectRedis(cfg, { maxRetriesPerRequest: null });
    this.redis.on("error", () => {}); // reported by health() and the queues' error events, not as unhandled events
    this.redis.on("ready", () => (this.lastConnectionError = ""));
    this.probe = connectRedis(cfg, {
      maxRetriesPerRequest: 0,
      connectTimeout: cfg.redisTimeoutMs,
      commandTimeout: cfg.redisTimeoutMs,
      retryStrategy: (n) => Math.min(50 * 2 ** n, 1000),
    });
    this.probe.on("error", () => {});
    this.store = new RunStore(this.redis, cfg.prefix, { runs: cfg.retention.runs, maxAgeMs: cfg.retention.maxAgeDays * 86_400_000 });
    this.kept = keptJobs(cfg);
    this.pacer = new Pacer(this.redis, cfg.prefix);
    this.registry = new NodeRegistry(this.redis, cfg);
    this.purges = new FleetPurge(this.redis, cfg, this.registry, () => new SchedulerRedisError(`the scheduler's Redis ${describeRedis(cfg.redis)} did not record the purge within ${cfg.redisTimeoutMs} ms; nothing was sent`));
    const streams = { events: { maxLen: QUEUE_EVENTS } };
    this.runs = new Queue<RunJobData>("runs", { connection: this.redis, prefix: cfg.prefix, streams });
    this.batches = new Queue<BatchJobData>("batches", { connection: this.redis, prefix: cfg.prefix, streams });
    for (const q of [this.runs, this.batches] as Queue[]) q.on("error", (e) => this.logConnectionError(e));
  }

  private lastConnectionError = "";
  /** One line per change of the scheduler Redis' state, not a stack trace per reconnection attempt. */
  private logConnectionError(e: Error): void {
    if (e.message === this.lastConnectionError) return;
    this.lastConnectionError = e.message;
    console.error(`scheduler: Redis ${describeRedis(this.cfg.redis)}: ${e.message}`);
  }

  /** Every queue this configuration uses (for the dashboard). */
  queues(): Queue[] {
    return [this.runs as Queue, this.batches as Queue];
  }

  private registered(): Promise<NodeState[]> {
    const now = Date.now();
    if (!this.registryCache || now - this.registryCache.at > REGISTRY_CACHE_MS) this.registryCache = { at: now, nodes: this.registry.list(now) };
    return this.registryCache.nodes;
  }

  /** The fleet now: the config's nodes and the registry's live ones. */
  async fleet(): Promise<EdgeNodeConfig[]> {
    return [...this.cfg.nodes, ...(await this.registered()).filter((n) => n.state === "live").map(asNode)];
  }

  /** The config with the fleet as it is now (for verify, check, hot SKUs). */
  async withFleet(): Promise<SchedulerConfig> {
    return { ...this.cfg, nodes: await this.fleet() };
  }

  /** A node to send a batch to, or why not. */
  private async nodeFor(name: string): Promise<EdgeNodeConfig | "absent"> {
    const fixed = this.cfg.nodes.find((n) => n.name === name);
    if (fixed) return fixed;
    const entry = (await this.registered()).find((n) => n.name === name);
    return entry?.state === "live" ? asNode(entry) : "absent";
  }

  /** Whether the scheduler's Redis answers a PING now (within `redisTimeoutMs`); never waits longer. */
  async health(): Promise<{ ok: true } | { ok: false; error: string }> {
    try {
      const pong = await within(this.probe.ping(), this.cfg.redisTimeoutMs, () => new Error(`no answer within ${this.cfg.redisTimeoutMs} ms`));
      return pong === "PONG" ? { ok: true } : { ok: false, error: `answered ${pong}` };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  /** Resolves once the scheduler's Redis answers; rejects after `redisTimeoutMs` with an error naming it. */
  async connected(): Promise<void> {
    const until = Date.now() + this.cfg.redisTimeoutMs;
    for (;;) {
      const h = await this.health();
      if (h.ok) return;
      if (Date.now() >= until) throw new SchedulerRedisError(`the scheduler's Redis ${describeRedis(this.cfg.redis)} did not answer within ${this.cfg.redisTimeoutMs} ms (${h.error})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The metadata a run is opened with, before its plan is expanded. */
  private openingMeta(plan: Plan, runId: string, trigger: string, jobId: string, createdAt: number): RunMeta {
    return {
      runId,
      plan: plan.name,
      planKey: planKey(plan),
      trigger,
      jobId,
      createdAt,
      deadline: createdAt + plan.deadline,
      failureThreshold: plan.failureThreshold,
      totalSkus: 0,
      batchSize: this.cfg.batchSize,
      nodes: [],
    };
  }

  /** Opens a run of a plan and enqueues its expansion; returns its id. Workers (here or in other processes) do the rest. */
  async startRun(plan: Plan, trigger = "cli"): Promise<string> {
    targetNodes(plan, await this.fleet()); // fail now, in the caller's terminal, rather than in a worker
    const runId = newRunId(plan.name);
    await this.store.open(this.openingMeta(plan, runId, trigger, runId, Date.now()));
    try {
      await this.runs.add("run", { plan, runId, trigger }, { jobId: runId, attempts: 3, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: this.kept, removeOnFail: this.kept });
    } catch (e) {
      await this.store.close(runId, `could not be enqueued: ${(e as Error).message}`).catch(() => {});
      throw e;
    }
    return runId;
  }

  /** Starts this process's workers: plan expansion, the batches (one worker, `concurrency` slots), the deadline sweep, and the purges' replays. */
  startWorkers(): void {
    const common = {
      connection: this.redis,
      prefix: this.cfg.prefix,
      lockDuration: this.cfg.lockDurationMs,
      stalledInterval: Math.max(250, Math.floor(this.cfg.lockDurationMs / 2)),
      maxStalledCount: this.cfg.maxStalledCount,
    };
    const runs = new Worker<RunJobData>("runs", (job) => (job.name === "verify" ? this.verifyCampaign(job) : this.expand(job)), { ...common, concurrency: 2 });
    runs.on("failed", (job, err) => {
      if (job?.finishedOn && job.name !== "verify") void this.expansionFailed(job, err).catch((e: Error) => console.error(`scheduler: recording the failed expansion ${job.id}: ${e.message}`));
    });
    this.workers.push(runs);
    const batches = new Worker<BatchJobData>("batches", (job, token) => this.processBatch(job, token), { ...common, concurrency: this.cfg.concurrency });
    // A batch that failed for good without our processor recording it (a scheduler error, a job
    // stalled past its limit) is recorded here; one the processor recorded is a no-op.
    batches.on("failed", (job, err) => {
      if (job?.finishedOn) void this.settleUnsent(job.data, jobFailureCode(err.message), 0).catch((e: Error) => console.error(`scheduler: recording the failed batch ${job.id}: ${e.message}`));
    });
    this.workers.push(batches);
    for (const w of this.workers) w.on("error", (e) => console.error(`scheduler worker ${w.name}: ${e.message}`));
    let sweeping = false;
    let retained = 0;
    this.sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      const now = Date.now();
      const keep = now - retained >= RETENTION_EVERY_MS;
      if (keep) retained = now;
      this.closeOverdueRuns(now)
        .catch((e: Error) => console.error(`scheduler: closing runs past their deadline: ${e.message}`))
        .then(() => (keep ? this.applyRetention(now) : undefined))
        .catch((e: Error) => console.error(`scheduler: dropping what is past its retention: ${e.message}`))
        .finally(() => (sweeping = false));
    }, SWEEP_EVERY_MS);
    this.sweeper.unref();
    // Purges a node did not confirm are sent again when due (a slow node does not hold up the deadline sweep).
    let replaying = false;
    this.replayer = setInterval(() => {
      if (replaying) return;
      replaying = true;
      this.purges
        .replayDue()
        .catch((e: Error) => console.error(`scheduler: sending pending purges again: ${e.message}`))
        .finally(() => (replaying = false));
    }, REPLAY_EVERY_MS);
    this.replayer.unref();
  }

  /** Resolves when every worker of this process is connected and consuming. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /** A cron run's id is its plan and fire time: BullMQ names a scheduler's job `repeat:<scheduler>:<fire time>`. */
  private runIdOf(job: Job<RunJobData>): string {
    if (job.data.runId !== undefined) return job.data.runId;
    const fireTime = /^repeat:.*:(\d+)$/.exec(job.id ?? "")?.[1];
    return `${job.data.plan.name}-${stamp(fireTime !== undefined ? Number(fireTime) : job.timestamp + (job.opts.delay ?? 0))}`;
  }

  private async expand(job: Job<RunJobData>): Promise<{ runId: string; batches: number }> {
    const { plan, trigger } = job.data;
    const runId = this.runIdOf(job);
    await this.store.open(this.openingMeta(plan, runId, trigger, job.id!, Date.now()));
    const opened = (await this.store.meta(runId))!; // a retried expansion keeps the first creation time and deadline
    let nodes: EdgeNodeConfig[];
    let skus: string[];
    try {
      nodes = targetNodes(plan, await this.fleet());
      skus = await resolveSkus(plan.skus, this.redis);
    } catch (e) {
      // A plan that cannot be valid fails once, not on every retry.
      if (isInvalidFileError(e) || e instanceof SkuSourceError) throw new UnrecoverableError((e as Error).message);
      throw e;
    }
    const size = opened.batchSize;
    const perNode = Math.ceil(skus.length / size);
    const meta: RunMeta = { ...opened, totalSkus: skus.length, nodes: nodes.map((n) => ({ name: n.name, region: n.region, url: n.url, batches: perNode })) };
    if ((await this.store.expanded(meta, skus)) === "closed") {
      console.error(`scheduler: run ${runId} was closed at its deadline before it was expanded; nothing enqueued`);
      return { runId, batches: 0 };
    }
    const opts: JobsOptions = {
      attempts: this.cfg.retry.attempts,
      backoff: { type: "exponential", delay: this.cfg.retry.backoffMs, jitter: 0.5 },
      // Its record in the run store is what counts: a job re-added after it was dropped finds it and sends nothing.
      removeOnComplete: true,
      removeOnFail: this.kept,
    };
    const tags = runTags(plan);
    // Batch i of every node, then batch i + 1: the queue serves the nodes evenly.
    const jobs = Array.from({ length: perNode }, (_, i) =>
      nodes.map((node) => {
        const batchId = `${runId}.${i}`;
        const data: BatchJobData = {
          runId,
          node: node.name,
          batchId,
          slot: i,
          batchSize: size,
          region: node.region,
          deadline: opened.deadline,
          planKey: opened.planKey,
          createdAt: opened.createdAt,
          ...(plan.ttl === undefined ? {} : { ttl: plan.ttl }),
          ...(plan.ttlJitter > 0 ? { ttlJitter: plan.ttlJitter } : {}),
          tags,
        };
        return { name: "batch", data, opts: { ...opts, jobId: batchJobId(node.name, batchId) } };
      }),
    ).flat();
    for (let i = 0; i < jobs.length; i += 1000) await this.batches.addBulk(jobs.slice(i, i + 1000));
    // Only once this run's batches are queued may they supersede an older run's.
    for (const node of nodes) await this.store.markLatest(opened.planKey, node.name, opened.createdAt, runId);
    return { runId, batches: perNode * nodes.length };
  }

  /**
   * A campaign's own readiness check before T0: verifies every target node,
   * re-warms the stragglers (one run: their SKUs, on the nodes that lack
   * them), waits for it, verifies again, and keeps both in that run and as
   * the plan's latest readiness. Returns the summary (the job's return value,
   * shown by the dashboard).
   */
  async verifyCampaign(job: Job<RunJobData>): Promise<{ plan: string; before: number; after: number | null; runId: string | null }> {
    const plan = job.data.plan;
    const skus = await resolveSkus(plan.skus, this.redis);
    const before = await verifyPlan(await this.withFleet(), plan, skus, { collect: true });
    const straggling = before.nodes.filter((n) => (n.stragglerSkus?.length ?? 0) > 0);
    let runId: string | null = null;
    let after: VerifyReport | null = null;
    if (straggling.length > 0) {
      const union = [...new Set(straggling.flatMap((n) => n.stragglerSkus!))];
      const { schedule: _s, ...rest } = plan;
      runId = await this.startRun({ ...rest, schedule: { once: true }, skus: { list: union }, targets: { nodes: straggling.map((n) => n.name) } }, "verify");
      const until = Date.now() + plan.deadline + CLOSE_GRACE_MS + 1000;
      while (Date.now() < until && (await this.store.report(runId))?.finishedAt == null) await new Promise((r) => setTimeout(r, 200));
      after = await verifyPlan(await this.withFleet(), plan, skus);
    }
    await this.store.saveReadiness({ plan: plan.name, before: summarize(before), after: after && summarize(after), runId });
    return { plan: plan.name, before: before.readyPct, after: after?.readyPct ?? null, runId };
  }

  /** An expansion that failed for good closes its run (opening it first, if it failed before that). */
  private async expansionFailed(job: Job<RunJobData>, err: Error): Promise<void> {
    const runId = this.runIdOf(job);
    await this.store.open(this.openingMeta(job.data.plan, runId, job.data.trigger, job.id!, job.processedOn ?? Date.now()));
    await this.store.close(runId, `expansion failed: ${err.message}`);
  }

  /** A result that fails every SKU of a batch with one code. */
  private failedBatch(d: BatchRef, skus: readonly string[], code: string, latencyMs: number): BatchResult {
    return {
      runId: d.runId,
      node: d.node,
      batchId: d.batchId,
      skus: skus.length,
      warmed: 0,
      fromEdge: 0,
      fromRegional: 0,
      failedByCode: { [code]: skus.length },
      batchFailed: true,
      latencyMs,
      samples: skus.slice(0, 5).map((sku) => ({ sku, code })),
    };
  }

  /**
   * Records a batch whose SKUs did not reach its node: failed for good with
   * one code, or (`code` null) superseded by a newer run of the plan. It is
   * the SKU batch the job took (or takes now), which the plan's next run
   * sends in its turn (before what was sent since). Does nothing for a batch
   * that has settled.
   */
  private async settleUnsent(d: BatchRef & { batchSize: number }, code: string | null, latencyMs: number): Promise<void> {
    const index = await this.store.claim(d, null);
    if (index === null) return;
    const skus = await this.store.skusOf(d.runId, d.batchSize, index);
    await this.store.unsent(d);
    await this.store.record(
      code !== null
        ? this.failedBatch(d, skus, code, latencyMs)
        : { runId: d.runId, node: d.node, batchId: d.batchId, skus: skus.length, warmed: 0, fromEdge: 0, fromRegional: 0, failedByCode: {}, batchFailed: false, superseded: skus.length, latencyMs: 0, samples: [] },
    );
  }

  private async processBatch(job: Job<BatchJobData>, token: string | undefined): Promise<void> {
    const d = job.data;
    const started = performance.now();
    if (d.deadline - Date.now() <= 0) return this.settleUnsent(d, "deadline_exceeded", 0);
    // A node that left (removed, or no longer announcing itself) fails at once, not retried until the deadline.
    const node = await this.nodeFor(d.node);
    if (node === "absent") return this.settleUnsent(d, "node_absent", 0);
    if ((await this.store.latest(d.planKey, d.node)) > d.createdAt) {
      // A newer run of the same plan has queued the same SKUs for this node: sending these would
      // only make a slow node slower and its data no fresher. The newer run sends first the SKU
      // batches this one leaves unsent (they were sent longest ago); the report counts them.
      return this.settleUnsent(d, null, 0);
    }
    // At most concurrencyPerNode batches in flight on the node, over all scheduler processes.
    const holder = batchJobId(d.node, d.batchId);
    if (!(await this.pacer.acquire(node.name, holder, this.cfg.concurrencyPerNode, this.cfg.requestTimeoutMs + 10_000))) return this.later(job, token, BUSY_RETRY_MS * (0.5 + Math.random()));
    try {
      // The SKU batch this job sends: the one its node got longest ago (the same one each time the
      // job is tried). Noted as sent now; if it is not sent after all, settleUnsent takes that back.
      const index = await this.store.claim(d, Date.now());
      if (index === null) return; // settled before: a job re-added or re-run after it was recorded
      const skus = await this.store.skusOf(d.runId, d.batchSize, index);
      // The node's pace (its SKUs/s limit, and any slowdown its recent answers caused): a batch that
      // would wait long goes back to the queue until then, booking nothing, rather than hold a slot.
      const pacedMs = await this.pacer.take(node.name, skus.length, node.maxSkusPerSecond ?? this.cfg.maxSkusPerSecondPerNode, Date.now(), BUSY_RETRY_MS);
      if (pacedMs < 0) return await this.later(job, token, -pacedMs);
      return await this.sendBatch(node, job, { index, skus }, started, pacedMs);
    } finally {
      await this.pacer.release(node.name, holder).catch(() => undefined); // else its lease expires
    }
  }

  /** Puts a batch back in the queue for `ms` without counting a try (BullMQ's DelayedError), or fails it when that passes its deadline. */
  private async later(job: Job<BatchJobData>, token: string | undefined, ms: number): Promise<void> {
    if (Date.now() + ms >= job.data.deadline) return this.settleUnsent(job.data, "deadline_exceeded", 0);
    await job.moveToDelayed(Date.now() + Math.ceil(ms), token);
    throw new DelayedError();
  }

  private async sendBatch(node: EdgeNodeConfig, job: Job<BatchJobData>, { index, skus }: { index: number; skus: string[] }, started: number, pacedMs: number): Promise<void> {
    const d = job.data;
    if (pacedMs > 0) await new Promise((res) => setTimeout(res, pacedMs)); // at most BUSY_RETRY_MS
    const remaining = d.deadline - Date.now();
    try {
      const answer = await postBatch({
        url: node.url,
        token: node.token ?? this.cfg.token,
        region: d.region,
        skus,
        ttl: d.ttl,
        ttlJitter: d.ttlJitter,
        tags: d.tags,
        jobId: d.batchId,
        timeoutMs: Math.min(this.cfg.requestTimeoutMs, remaining),
      });
      // Counted in a Map: a code is the node's word, and an object has inherited keys (`constructor`).
      const codes = new Map<string, number>();
      for (const f of answer.failed) codes.set(f.code, (codes.get(f.code) ?? 0) + 1);
      const failedByCode: Record<string, number> = Object.fromEntries(codes);
      const slowdown = slowdownReason(answer, this.cfg.protect);
      if (slowdown !== null && this.cfg.protect.slowdownMs > 0) await this.pacer.slow(node.name, this.cfg.protect.slowdownMs);
      // regional_unavailable is the node's transient state (its Redis and the region could not
      // answer just now): try the batch again while tries are left; warming twice is harmless.
      const transient = codes.get("regional_unavailable") ?? 0;
      if (transient > 0 && job.attemptsMade + 1 < (job.opts.attempts ?? 1) && Date.now() < d.deadline) {
        throw new Error(`${node.name}: ${transient} SKUs regional_unavailable; retrying the batch`);
      }
      await this.store.record({
        runId: d.runId,
        node: d.node,
        batchId: d.batchId,
        skus: skus.length,
        warmed: answer.warmed,
        fromEdge: answer.fromEdge,
        fromRegional: answer.fromRegional,
        failedByCode,
        batchFailed: false,
        latencyMs: performance.now() - started,
        samples: answer.failed,
        pacedMs,
        ...(slowdown !== null ? { slowed: { [slowdown]: 1 } } : {}),
      });
    } catch (e) {
      if (!isBatchError(e)) throw e; // retried by BullMQ; when the tries run out, the failed handler records it
      const lastTry = !e.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || Date.now() >= d.deadline;
      if (!lastTry) throw e; // BullMQ retries it after an exponential, jittered backoff
      await this.store.unsent(d);
      await this.store.record(this.failedBatch(d, skus, e.code, performance.now() - started));
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }
  }

  /** Closes every open run past its deadline (and the grace); returns how many it closed. */
  async closeOverdueRuns(now = Date.now()): Promise<number> {
    let closed = 0;
    for (const runId of await this.store.overdue(now - CLOSE_GRACE_MS)) if (await this.closeRun(runId)) closed++;
    return closed;
  }

  /** Closes one run if it is open past its deadline (and the grace). */
  async closeRunIfOverdue(runId: string, now = Date.now()): Promise<boolean> {
    const meta = await this.store.meta(runId);
    return meta !== null && meta.deadline + CLOSE_GRACE_MS <= now && this.closeRun(runId);
  }

  /**
   * Settles what no process settled by the deadline, each batch with the
   * reason its job gives (`stalled`, `scheduler_error`, `not_enqueued`,
   * else `deadline_exceeded`), and closes the run with a summary.
   */
  private async closeRun(runId: string): Promise<boolean> {
    const meta = await this.store.meta(runId);
    if (meta === null) return this.store.close(runId, ""); // its records expired
    if (!(await this.store.isExpanded(runId))) {
      const job = await Job.fromId<RunJobData>(this.runs, meta.jobId);
      const why = job?.failedReason
        ? `expansion failed: ${job.failedReason}`
        : `its plan was not expanded into batches by the deadline (${job ? "no scheduler worker took the run" : "the run's job is missing: its process stopped between opening and enqueuing it"})`;
      return this.store.close(runId, why);
    }
    const unsettled = await this.store.unsettled(meta);
    if (unsettled.length === 0) return this.store.close(runId, "");
    const settled = await Promise.all(
      unsettled.map(async (b) => {
        const job = await Job.fromId<BatchJobData>(this.batches, batchJobId(b.node, b.batchId));
        const code = !job ? "not_enqueued" : job.finishedOn && job.failedReason ? jobFailureCode(job.failedReason) : "deadline_exceeded";
        return { code, ref: { runId, node: b.node, batchId: b.batchId, slot: b.slot, planKey: meta.planKey } };
      }),
    );
    const byCode: Record<string, number> = {};
    for (const { code } of settled) byCode[code] = (byCode[code] ?? 0) + 1;
    const total = meta.nodes.reduce((s, n) => s + n.batches, 0);
    const codes = Object.entries(byCode).map(([c, n]) => `${n} ${c}`).join(", ");
    // The reason first: the last record below finishes the run, and whoever sees it finished sees why.
    const reason = `closed at its deadline with ${unsettled.length} of ${total} batches unsettled (${codes})`;
    await this.store.setReason(runId, reason);
    await Promise.all(
      settled.map(async ({ code, ref }) => {
        const index = await this.store.claim(ref, null);
        if (index === null) return;
        // The SKUs themselves only for the samples; the count holds even when they are gone.
        const count = batchSkus(meta, index);
        const samples = await this.store.skusOf(runId, meta.batchSize, index);
        await this.store.unsent(ref);
        await this.store.record({ ...this.failedBatch(ref, samples.slice(0, 5), code, 0), skus: count, failedByCode: { [code]: count } });
      }),
    );
    await this.store.close(runId, reason);
    return true;
  }

  /** Drops the runs past their age (count is kept when runs open) and the registry nodes silent past `forgetNodesAfterDays`. */
  async applyRetention(now = Date.now()): Promise<void> {
    while ((await this.store.trim(now)) > 0);
    while ((await this.purges.trim(now)) > 0);
    await this.registry.forgetSilent(this.cfg.retention.forgetNodesAfterDays * 86_400_000, now);
  }

  /** Closes workers, then queues and the connections; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    clearInterval(this.replayer);
    // Bounded: a worker or queue whose connection never became ready (a cluster that answered "none of startup nodes
    // is available") can wait on it for ever; past the bound its connections are dropped all the same.
    const bounded = (p: Promise<unknown>): Promise<unknown> => within(p, ENGINE_CLOSE_MS, () => new Error("closing took too long")).catch(() => undefined);
    await bounded(Promise.all(this.workers.map((w) => w.close())));
    await bounded(Promise.all([this.runs.close(), this.batches.close()]));
    for (const w of this.workers) w.disconnect().catch(() => undefined);
    this.redis.disconnect();
    this.probe.disconnect();
  }
}

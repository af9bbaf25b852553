/**
 * The fan-out engine: BullMQ queues in the scheduler's Redis, shared by every
 * scheduler process. A run job (queue `runs`) expands a plan into batches and
 * enqueues them on one queue per edge node (`node-<name>`); each node queue
 * has its own workers with the per-node concurrency, so a slow or dead node
 * only ever holds up its own queue. Job ids are derived from the run id, so
 * an expansion that is retried enqueues nothing twice, and the run store
 * counts each batch once however often it is tried.
 */
import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import type { EdgeNodeConfig, SchedulerConfig } from "./config";
import { isBatchError, postBatch } from "./edge-client";
import { targetNodes, type Plan } from "./plan";
import { RunStore, type BatchResult, type RunMeta } from "./run-store";
import { isInvalidFileError } from "./schema-errors";
import { resolveSkus, SkuSourceError } from "./sku-source";

export interface RunJobData {
  plan: Plan;
  /** Set for runs started by hand or by a campaign; cron runs derive it from their fire time. */
  runId?: string;
  trigger: string;
}

export interface BatchJobData {
  runId: string;
  node: string;
  batchId: string;
  region: string;
  skus: string[];
  ttl?: number;
  deadline: number;
}

/** Completed and failed jobs are kept this long, so a re-added job id stays a no-op. */
const KEEP_JOBS = { age: 7 * 86_400, count: 100_000 };

/** `20261111T000000123Z`: a sortable, id-safe instant. */
export function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, "");
}

export function newRunId(planName: string, at = Date.now()): string {
  return `${planName}-${stamp(at)}-${Math.random().toString(36).slice(2, 6)}`;
}

export function nodeQueueName(node: string): string {
  return `node-${node}`;
}

export class Engine {
  readonly redis: Redis;
  readonly store: RunStore;
  readonly runs: Queue<RunJobData>;
  private readonly nodeQueues = new Map<string, Queue<BatchJobData>>();
  private readonly workers: Worker[] = [];
  private closed = false;

  constructor(readonly cfg: SchedulerConfig) {
    // BullMQ's blocking commands need ioredis to retry forever rather than fail a request.
    this.redis = new Redis(cfg.redis, { maxRetriesPerRequest: null });
    this.store = new RunStore(this.redis, cfg.prefix);
    this.runs = new Queue<RunJobData>("runs", { connection: this.redis, prefix: cfg.prefix });
  }

  nodeQueue(node: string): Queue<BatchJobData> {
    let q = this.nodeQueues.get(node);
    if (!q) {
      q = new Queue<BatchJobData>(nodeQueueName(node), { connection: this.redis, prefix: this.cfg.prefix });
      this.nodeQueues.set(node, q);
    }
    return q;
  }

  /** Every queue this configuration uses (for the dashboard). */
  queues(): Queue[] {
    return [this.runs as Queue, ...this.cfg.nodes.map((n) => this.nodeQueue(n.name) as Queue)];
  }

  /** Enqueues a run of a plan and returns its id; workers (here or in other processes) do the rest. */
  async startRun(plan: Plan, trigger = "cli"): Promise<string> {
    targetNodes(plan, this.cfg.nodes); // fail now, in the caller's terminal, rather than in a worker
    const runId = newRunId(plan.name);
    await this.runs.add("run", { plan, runId, trigger }, { jobId: runId, attempts: 3, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: KEEP_JOBS, removeOnFail: KEEP_JOBS });
    return runId;
  }

  /** Starts this process's workers: plan expansion, and one worker per node queue. */
  startWorkers(): void {
    const common = {
      connection: this.redis,
      prefix: this.cfg.prefix,
      lockDuration: this.cfg.lockDurationMs,
      stalledInterval: Math.max(250, Math.floor(this.cfg.lockDurationMs / 2)),
      maxStalledCount: 5,
    };
    this.workers.push(new Worker<RunJobData>("runs", (job) => this.expand(job), { ...common, concurrency: 2 }));
    for (const node of this.cfg.nodes) {
      this.workers.push(new Worker<BatchJobData>(nodeQueueName(node.name), (job) => this.processBatch(node, job), { ...common, concurrency: this.cfg.concurrencyPerNode }));
    }
    for (const w of this.workers) w.on("error", (e) => console.error(`scheduler worker ${w.name}: ${e.message}`));
  }

  /** Resolves when every worker of this process is connected and consuming. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  private async expand(job: Job<RunJobData>): Promise<{ runId: string; batches: number }> {
    const { plan, trigger } = job.data;
    const runId = job.data.runId ?? `${plan.name}-${stamp(job.timestamp + (job.opts.delay ?? 0))}`;
    let nodes: EdgeNodeConfig[];
    let skus: string[];
    try {
      nodes = targetNodes(plan, this.cfg.nodes);
      skus = await resolveSkus(plan.skus, this.redis);
    } catch (e) {
      // A plan that cannot be valid fails once, not on every retry.
      if (isInvalidFileError(e) || e instanceof SkuSourceError) throw new UnrecoverableError((e as Error).message);
      throw e;
    }
    const size = this.cfg.batchSize;
    const batches: string[][] = [];
    for (let i = 0; i < skus.length; i += size) batches.push(skus.slice(i, i + size));
    const createdAt = Date.now();
    const meta: RunMeta = {
      runId,
      plan: plan.name,
      trigger,
      createdAt,
      deadline: createdAt + plan.deadline,
      failureThreshold: plan.failureThreshold,
      totalSkus: skus.length,
      nodes: nodes.map((n) => ({ name: n.name, region: n.region, url: n.url, batches: batches.length })),
    };
    await this.store.create(meta);
    const stored = (await this.store.meta(runId)) ?? meta; // a retried expansion keeps the first deadline
    const opts: JobsOptions = {
      attempts: this.cfg.retry.attempts,
      backoff: { type: "exponential", delay: this.cfg.retry.backoffMs, jitter: 0.5 },
      removeOnComplete: KEEP_JOBS,
      removeOnFail: KEEP_JOBS,
    };
    for (const node of nodes) {
      await this.nodeQueue(node.name).addBulk(
        batches.map((b, i) => {
          const batchId = `${runId}.${i}`;
          const data: BatchJobData = { runId, node: node.name, batchId, region: node.region, skus: b, deadline: stored.deadline, ...(plan.ttl === undefined ? {} : { ttl: plan.ttl }) };
          return { name: "batch", data, opts: { ...opts, jobId: batchId } };
        }),
      );
    }
    return { runId, batches: batches.length * nodes.length };
  }

  private async processBatch(node: EdgeNodeConfig, job: Job<BatchJobData>): Promise<void> {
    const d = job.data;
    const started = performance.now();
    const failAll = (code: string): BatchResult => ({
      runId: d.runId,
      node: d.node,
      batchId: d.batchId,
      skus: d.skus.length,
      warmed: 0,
      fromEdge: 0,
      fromRegional: 0,
      failedByCode: { [code]: d.skus.length },
      batchFailed: true,
      latencyMs: performance.now() - started,
      samples: d.skus.slice(0, 5).map((sku) => ({ sku, code })),
    });
    const remaining = d.deadline - Date.now();
    if (remaining <= 0) {
      await this.store.record(failAll("deadline_exceeded"));
      return;
    }
    try {
      const answer = await postBatch({
        url: node.url,
        token: node.token ?? this.cfg.token,
        region: d.region,
        skus: d.skus,
        ttl: d.ttl,
        jobId: d.batchId,
        timeoutMs: Math.min(this.cfg.requestTimeoutMs, remaining),
      });
      const failedByCode: Record<string, number> = {};
      for (const f of answer.failed) failedByCode[f.code] = (failedByCode[f.code] ?? 0) + 1;
      // regional_unavailable is the node's transient state (its Redis and the region could not
      // answer just now): try the batch again while tries are left; warming twice is harmless.
      const transient = failedByCode["regional_unavailable"] ?? 0;
      if (transient > 0 && job.attemptsMade + 1 < (job.opts.attempts ?? 1) && Date.now() < d.deadline) {
        throw new Error(`${node.name}: ${transient} SKUs regional_unavailable; retrying the batch`);
      }
      await this.store.record({
        runId: d.runId,
        node: d.node,
        batchId: d.batchId,
        skus: d.skus.length,
        warmed: answer.warmed,
        fromEdge: answer.fromEdge,
        fromRegional: answer.fromRegional,
        failedByCode,
        batchFailed: false,
        latencyMs: performance.now() - started,
        samples: answer.failed,
      });
    } catch (e) {
      if (!isBatchError(e)) throw e;
      const lastTry = !e.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1) || Date.now() >= d.deadline;
      if (!lastTry) throw e; // BullMQ retries it after an exponential, jittered backoff
      await this.store.record(failAll(e.code));
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }
  }

  /** Closes workers, then queues and the connection; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
    await Promise.all([this.runs.close(), ...[...this.nodeQueues.values()].map((q) => q.close())]);
    this.redis.disconnect();
  }
}

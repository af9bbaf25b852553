/**
 * The scheduler's Redis stays bounded however many runs go through it: the
 * run store keeps the newest `retention.runs` runs (none past
 * `retention.maxAgeDays`), completed batch jobs are dropped at once, failed
 * ones are capped, the queues' event streams are capped, and announced nodes
 * silent for `retention.forgetNodesAfterDays` leave the registry. Real edge
 * nodes and the scheduler's real Redis (or cluster), measured with MEMORY USAGE.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Cluster, type Redis } from "ioredis";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { parsePlan, type Plan } from "../../prewarm-scheduler/plans/plan";
import { watchRun } from "../../prewarm-scheduler/cli/progress";
import type { SchedulerRedis } from "../../prewarm-scheduler/redis/redis";
import { useStack } from "./scheduler/stack";

const ROOT = path.resolve(import.meta.dirname, "../..");
const suite = useStack(100);
const { engine } = suite;

/** Every key under the config's prefix (on a cluster, from every primary). */
async function keysOf(redis: SchedulerRedis, prefix: string): Promise<string[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes("master") : [redis];
  const out: string[] = [];
  for (const n of nodes) {
    let cursor = "0";
    do {
      const [next, keys] = await n.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      out.push(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
  return out;
}

/** The bytes Redis holds for `keys` (MEMORY USAGE, every element counted). */
async function bytesOf(redis: SchedulerRedis, keys: readonly string[]): Promise<number> {
  let total = 0;
  for (const k of keys) total += Number((await redis.call("MEMORY", "USAGE", k, "SAMPLES", "0")) ?? 0);
  return total;
}

/** Runs the `prewarm` CLI to its exit, with its stdout. */
function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

describe("retention", () => {
  it("keeps the scheduler's Redis under its bound over 200 runs: the newest retention.runs runs with their reports, no completed batch job, other finished jobs capped", async () => {
    const keep = 20;
    const jobs = 10;
    const cfg = suite.stack.config({ batchSize: 5, retry: { attempts: 1, backoffMs: 0 }, retention: { runs: keep, jobs } });
    cfg.nodes.push(await suite.stack.deadNode()); // every run fails its batches there: failed jobs pile up unless capped
    const e = engine(cfg);
    const small = (i: number): Plan => parsePlan({ name: `small-${i % 7}`, skus: { list: suite.stack.skus.slice(i % 50, (i % 50) + 10) }, ttl: 60, failureThreshold: 1 });

    // One run alone: what a finished run of 3 nodes, 2 batches each, keeps.
    const first = await watchRun(e, await e.startRun(small(0)), { bars: false, pollMs: 20 });
    expect(first.status).toBe("done");
    const perRun = await bytesOf(e.redis, (await keysOf(e.redis, e.cfg.prefix)).filter((k) => k.includes(`:run:${first.runId}`)));

    const total = 200;
    for (let i = 1; i < total; i += 10) {
      const ids = await Promise.all(Array.from({ length: Math.min(10, total - i) }, (_, j) => e.startRun(small(i + j))));
      for (const id of ids) expect((await watchRun(e, id, { bars: false, pollMs: 20 })).finishedAt).not.toBeNull();
    }

    const keys = await keysOf(e.redis, e.cfg.prefix);
    const runKeys = keys.filter((k) => k.includes(":run:"));
    const listed = await e.store.list(1000);
    expect(listed).toHaveLength(keep);
    expect(await e.redis.zcard(`${e.cfg.prefix}:runs`)).toBe(keep);
    // Per run: its hash, done set, failure samples and a latency list per node; its SKUs and
    // to-do sets are gone once it finished.
    expect(runKeys.length).toBeLessThanOrEqual(keep * (3 + cfg.nodes.length));
    expect(runKeys.filter((k) => /:(skus|todo:[^:]+)$/.test(k))).toEqual([]);
    expect(await e.batches.getJobCounts("completed", "failed", "waiting", "delayed", "active")).toEqual({ completed: 0, failed: jobs, waiting: 0, delayed: 0, active: 0 });
    expect(await e.runs.getCompletedCount()).toBe(jobs);
    for (const q of ["runs", "batches"]) expect(await e.redis.xlen(`${e.cfg.prefix}:${q}:events`)).toBeLessThanOrEqual(1100);

    // The bound: the kept runs, the capped failed jobs and event streams, and the queues' own keys.
    const used = await bytesOf(e.redis, keys);
    const failedJob = await bytesOf(e.redis, keys.filter((k) => /:batches:[^:]+@edge-dead$/.test(k)).slice(0, 1));
    const runJob = await bytesOf(e.redis, [`${e.cfg.prefix}:runs:${listed[0]}`]);
    const streams = await bytesOf(e.redis, keys.filter((k) => k.endsWith(":events")));
    const bound = keep * perRun * 1.25 + jobs * (failedJob + runJob) * 1.25 + streams + 64 * 1024;
    console.log(`retention: ${keys.length} keys, ${used} bytes (bound ${Math.round(bound)}): a run ${perRun} B, a failed batch job ${failedJob} B, a run job ${runJob} B, event streams ${streams} B`);
    expect(used).toBeLessThanOrEqual(bound);
    expect(streams).toBeLessThanOrEqual(2 * 200 * 1024);

    // What is kept still reads: every kept run's report, and `prewarm list`.
    for (const id of listed) expect((await e.store.report(id))?.finishedAt).not.toBeNull();
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-retention-"));
    try {
      const configFile = path.join(dir, "config.yaml");
      writeFileSync(configFile, stringify(cfg));
      const r = await cli(["list", "--json", "--limit", "1000", "--config", configFile]);
      expect(r.code).toBe(0);
      expect((JSON.parse(r.out) as { runs: { runId: string; status: string }[] }).runs.map((x) => x.runId)).toEqual(listed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it("drops the runs past retention.maxAgeDays but never an open one, and forgets nodes silent past forgetNodesAfterDays", async () => {
    const cfg = suite.stack.config({ nodeUrlAllow: ["http://127.0.0.1:9999"], retention: { maxAgeDays: 1, forgetNodesAfterDays: 2 } });
    const e = engine(cfg, false);
    const now = Date.now();
    const day = 86_400_000;
    const meta = (runId: string, createdAt: number) => ({ runId, plan: "p", planKey: "p.x", trigger: "test", jobId: runId, createdAt, deadline: createdAt + 60_000, failureThreshold: 0, totalSkus: 0, batchSize: 1000, nodes: [] });
    await e.store.open(meta("old-done", now - 2 * day));
    await e.store.expanded(meta("old-done", now - 2 * day)); // no batches: finished at once
    await e.store.open(meta("old-open", now - 2 * day)); // never expanded: still open
    await e.store.open(meta("fresh", now));
    await e.store.expanded(meta("fresh", now));
    const node = (name: string) => ({ name, url: "http://127.0.0.1:9999", region: "cn-east" });
    await e.registry.announce(node("edge-gone"), now - 3 * day);
    await e.registry.announce(node("edge-quiet"), now - day); // absent, not yet forgotten
    await e.registry.add(node("edge-added"), now - 30 * day); // added by hand: stays

    await e.applyRetention(now);
    expect((await e.store.list(10)).sort()).toEqual(["fresh", "old-open"]);
    expect(await e.store.report("old-done")).toBeNull();
    expect((await keysOf(e.redis, e.cfg.prefix)).filter((k) => k.includes("old-done"))).toEqual([]);
    expect((await e.registry.list(now)).map((n) => [n.name, n.state])).toEqual([
      ["edge-added", "live"],
      ["edge-quiet", "absent"],
    ]);
  });
});

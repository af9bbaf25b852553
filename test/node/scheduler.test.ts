/**
 * The prewarm scheduler against real edge nodes (the worker in workerd, each
 * with its own real Redis) and a real Redis for BullMQ, over HTTP.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../prewarm-scheduler/config/config";
import { Engine, planKey, stamp } from "../../prewarm-scheduler/runs/engine";
import { opsApp } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { loadPlan, parsePlan, type Plan } from "../../prewarm-scheduler/plans/plan";
import { watchRun } from "../../prewarm-scheduler/cli/progress";
import { listSchedules, schedulePlan, unschedulePlan } from "../../prewarm-scheduler/runs/schedules";
import { requiredUntil, verifyPlan } from "../../prewarm-scheduler/fleet/verify";
import { collectHotSkus } from "../../prewarm-scheduler/fleet/hot-skus";
import { Pacer, slowdownReason } from "../../prewarm-scheduler/runs/pacing";
import { checkPlan } from "../../prewarm-scheduler/runs/check";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { startRegional } from "../../regional/server";
import { serveOps } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { startEdgeNode } from "../../scripts/edge-node";
import { freePort, startRedis } from "../../scripts/redis-server";
import { Cluster } from "ioredis";
import { CLUSTER, TOKEN, until, useStack } from "./scheduler/stack";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SKUS = 2500;
const suite = useStack(SKUS);
const { engine } = suite;

/**
 * Starts the `prewarm` CLI as one process (`node --import tsx`, not the tsx
 * launcher, whose child would outlive a SIGKILL of the launcher).
 */
function spawnCli(args: string[], stdio: "ignore" | "pipe"): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "ignore", stdio] });
}

/** Runs the `prewarm` CLI to its exit. */
function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; err: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawnCli(args, "pipe");
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, err, ms: Date.now() - started });
    });
  });
}


function plan(overrides: Record<string, unknown> = {}): Plan {
  return parsePlan({ name: "test-plan", skus: { list: suite.stack.skus }, ttl: 120, ...overrides });
}

describe("the scheduler's Redis", () => {
  it(`is ${CLUSTER ? "a Redis Cluster of 3 primaries, every key of a run in its prefix's hash slot" : "one server"}`, async () => {
    const e = engine(suite.stack.config());
    if (!CLUSTER) return expect(e.redis).not.toBeInstanceOf(Cluster);
    expect(e.redis).toBeInstanceOf(Cluster);
    await e.waitUntilReady();
    expect((e.redis as Cluster).nodes("master")).toHaveLength(3);
    expect(e.cfg.prefix).toMatch(/^\{test-[0-9a-f]{8}\}$/);
    const r = await watchRun(e, await e.startRun(plan({ skus: { list: suite.stack.skus.slice(0, 10) } })), { bars: false, pollMs: 50 });
    expect(r.status).toBe("done");
  });
});

describe("run", () => {
  it("warms every SKU of the plan on every node, and the nodes confirm it", async () => {
    const cfg = suite.stack.config();
    const before = await Promise.all(suite.stack.edges.map((e) => suite.stack.warmedCounter(e.node.url)));
    const e = engine(cfg);
    const runId = await e.startRun(plan());
    const r = await watchRun(e, runId, { bars: false, pollMs: 100 });

    expect(r.status).toBe("done");
    expect(r.totalSkus).toBe(SKUS);
    for (const n of r.nodes) {
      expect({ node: n.name, warmed: n.warmed, failed: n.failed, settled: n.settled, batches: n.batches }).toEqual({ node: n.name, warmed: SKUS, failed: 0, settled: 3, batches: 3 });
      expect(n.fromEdge).toBe(SKUS);
      expect(n.p50Ms).toBeGreaterThan(0);
    }
    const after = await Promise.all(suite.stack.edges.map((e) => suite.stack.warmedCounter(e.node.url)));
    expect(after.map((a, i) => a - before[i]!)).toEqual([SKUS, SKUS]);
    for (const edge of suite.stack.edges) {
      for (const sku of [suite.stack.skus[0]!, suite.stack.skus[SKUS - 1]!]) {
        const res = await fetch(`${edge.node.url}/v1/skus/${sku}`);
        expect(res.headers.get("x-cache"), `${edge.name} ${sku}`).toBe("HIT");
        expect(((await res.json()) as { region: string }).region).toBe(edge.region);
      }
    }
  });

  it("sends the plan's ttlJitter: a batch's keys expire over that many seconds", async () => {
    const e = engine(suite.stack.config());
    const skus = suite.stack.skus.slice(2000, 2100);
    const r = await watchRun(e, await e.startRun(plan({ name: "jitter", skus: { list: skus }, ttl: 900, ttlJitter: 600, targets: { regions: ["cn-east"] } })), { bars: false, pollMs: 100 });
    expect(r.status).toBe("done");
    const lives: number[] = [];
    for (const sku of skus) {
      const a = (await (await fetch(`${suite.stack.edges[0]!.node.url}/v1/skus/${sku}`)).json()) as { computedAt: number; validUntil: number };
      lives.push(a.validUntil - a.computedAt);
    }
    expect(Math.min(...lives)).toBeGreaterThanOrEqual(300_000);
    expect(Math.max(...lives)).toBeLessThanOrEqual(900_000);
    expect(new Set(lives.map((l) => Math.floor(l / 10_000))).size).toBeGreaterThan(30);
  });

  it("targets the nodes of the regions a plan names", async () => {
    const e = engine(suite.stack.config({ batchSize: 500 }));
    const r = await watchRun(e, await e.startRun(plan({ targets: { regions: ["cn-north"] }, skus: { list: suite.stack.skus.slice(0, 600) } })), { bars: false, pollMs: 100 });
    expect(r.nodes.map((n) => [n.name, n.warmed, n.batches])).toEqual([["edge-north", 600, 2]]);
  });

  it("retries a node that is down and reports it, while the other nodes finish", async () => {
    const dead = await suite.stack.deadNode();
    const cfg = suite.stack.config();
    cfg.nodes.push(dead);
    const e = engine(cfg);
    const runId = await e.startRun(plan());
    const r = await watchRun(e, runId, { bars: false, pollMs: 100 });

    expect(r.status).toBe("failed");
    const byName = Object.fromEntries(r.nodes.map((n) => [n.name, n]));
    expect(byName["edge-east"]!.warmed).toBe(SKUS);
    expect(byName["edge-north"]!.warmed).toBe(SKUS);
    expect(byName["edge-dead"]).toMatchObject({ warmed: 0, failed: SKUS, batchesFailed: 3, failedByCode: { node_unreachable: SKUS } });
    const jobs = (await e.batches.getFailed()).filter((j) => j.data.node === "edge-dead");
    expect(jobs.map((j) => j.attemptsMade)).toEqual([3, 3, 3]);
    const failures = await e.store.failures(runId);
    expect(failures.every((f) => f.node === "edge-dead" && f.code === "node_unreachable")).toBe(true);
  });

  it("fails the batches still unsent at the run's deadline with deadline_exceeded", async () => {
    const cfg = suite.stack.config({ concurrencyPerNode: 1, batchSize: 100 });
    const e = engine(cfg);
    const r = await watchRun(e, await e.startRun(plan({ deadline: "1ms" })), { bars: false, pollMs: 100 });
    expect(r.status).toBe("failed");
    for (const n of r.nodes) {
      expect(n.settled).toBe(25);
      expect(n.failedByCode["deadline_exceeded"]).toBe(n.failed);
      expect(n.warmed + n.failed).toBe(SKUS);
    }
  });
});

describe("fan-out over the fleet", () => {
  it("keeps a scheduler process's Redis connections bounded whatever the number of nodes", async () => {
    const admin = suite.stack.config();
    const probe = new Engine(admin);
    // On a cluster, the connections to every primary.
    const clients = async (): Promise<number> => {
      const servers = probe.redis instanceof Cluster ? probe.redis.nodes("master") : [probe.redis];
      const lists = await Promise.all(servers.map((r) => r.client("LIST") as Promise<string>));
      return lists.reduce((n, l) => n + l.trim().split("\n").length, 0);
    };
    try {
      const before = await clients();
      const nodes = Array.from({ length: 200 }, (_, i) => ({ name: `n-${i}`, url: `http://127.0.0.1:${1 + i}`, region: "cn-east" }));
      const e = engine(suite.stack.config({ nodes }));
      await e.waitUntilReady();
      await e.health();
      // At most 5 per Redis server it talks to (a cluster client connects to every primary), none per node.
      const servers = probe.redis instanceof Cluster ? probe.redis.nodes("master").length : 1;
      expect((await clients()) - before).toBeLessThanOrEqual(5 * servers);
    } finally {
      await probe.close();
    }
  });

  it("lets a node that does not answer hold up only its own batches", async () => {
    const sockets: Socket[] = [];
    const server = createServer((x) => sockets.push(x));
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    try {
      const cfg = suite.stack.config({ batchSize: 100, concurrency: 4, concurrencyPerNode: 1, requestTimeoutMs: 8000 });
      cfg.nodes.push({ name: "edge-hang", url: `http://127.0.0.1:${port}`, region: "us-west" });
      const e = engine(cfg);
      const runId = await e.startRun(plan({ skus: { list: suite.stack.skus.slice(0, 1000) }, deadline: "30s" }));
      // 10 batches for each node; the hanging node's first batch holds one slot until its timeout.
      const r = await until(() => e.store.report(runId), (x) => (x?.nodes ?? []).filter((n) => n.name !== "edge-hang").every((n) => n.settled === 10) && (x?.nodes.length ?? 0) === 3, 20_000);
      const hang = r!.nodes.find((n) => n.name === "edge-hang")!;
      expect(hang.settled).toBe(0); // still waiting for its first answer
      expect(sockets.length).toBe(1); // one batch in flight on it (concurrencyPerNode), the rest waiting in the queue
      for (const n of r!.nodes.filter((x) => x.name !== "edge-hang")) expect([n.name, n.warmed]).toEqual([n.name, 1000]);
    } finally {
      for (const x of sockets) x.destroy();
      server.close();
    }
  }, 30_000);
});

describe("the node registry", () => {
  const post = (app: ReturnType<typeof opsApp>, route: string, body: unknown, token?: string): Promise<Response> =>
    Promise.resolve(app.request(route, { method: "POST", headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) }));

  it("lets a node join by announcing itself, only with the registry token and at an allowed URL; a run targets it; when it stops announcing, its batches fail as node_absent", async () => {
    const cfg = suite.stack.config({ nodeUrlAllow: [suite.stack.edges[0]!.node.url], registryToken: "reg-secret", nodeAbsentAfterMs: 1500 });
    const e = engine(cfg);
    const app = opsApp(e);
    const joined = { name: "edge-joined", url: suite.stack.edges[0]!.node.url, region: "cn-east", processes: 2, version: "test" };
    expect((await post(app, "/v1/nodes/announce", joined)).status).toBe(401);
    expect((await post(app, "/v1/nodes/announce", joined, "wrong")).status).toBe(401);
    const elsewhere = await post(app, "/v1/nodes/announce", { ...joined, url: "http://10.9.8.7:8787" }, "reg-secret");
    expect(elsewhere.status).toBe(400);
    const text = await elsewhere.text();
    expect(text).toMatch(/url: not allowed by the config's nodeUrlAllow/);
    expect(text).not.toContain("10.9.8.7");
    expect((await post(app, "/v1/nodes/announce", { ...joined, name: "edge-east" }, "reg-secret")).status).toBe(400);
    expect((await post(app, "/v1/nodes/announce", joined, "reg-secret")).status).toBe(200);

    const listed = (await (await app.request("/v1/nodes")).json()) as { nodes: { name: string; source: string; state: string }[] };
    expect(listed.nodes.map((n) => [n.name, n.source, n.state])).toEqual([["edge-east", "config", "live"], ["edge-north", "config", "live"], ["edge-joined", "announced", "live"]]);
    const r = await watchRun(e, await e.startRun(plan({ targets: { nodes: ["edge-joined"] }, skus: { list: suite.stack.skus.slice(0, 10) } })), { bars: false, pollMs: 50 });
    expect(r.nodes.map((n) => [n.name, n.warmed])).toEqual([["edge-joined", 10]]);

    // Queued while it was live, sent after it stopped announcing: node_absent at once, not retried.
    await e.batches.pause();
    const runId = await e.startRun(plan({ targets: { nodes: ["edge-joined"] }, skus: { list: suite.stack.skus.slice(0, 10) } }));
    await until(() => e.store.isExpanded(runId), Boolean);
    await new Promise((res) => setTimeout(res, 2600)); // past nodeAbsentAfterMs, and the 1 s registry cache
    expect((await e.registry.list()).map((n) => [n.name, n.state])).toEqual([["edge-joined", "absent"]]);
    await e.batches.resume();
    const gone = await watchRun(e, runId, { bars: false, pollMs: 50 });
    expect(gone.nodes[0]).toMatchObject({ name: "edge-joined", failedByCode: { node_absent: 10 } });
    // One try, no retry: the queue's event stream has the batch's job taken once (completed jobs are not kept).
    const events = (await e.redis.xrange(`${e.cfg.prefix}:batches:events`, "-", "+")).map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1]]] : []))) as Record<string, string>);
    expect(events.filter((ev) => ev["jobId"] === `${runId}.0@edge-joined` && ev["event"] !== "added" && ev["event"] !== "waiting").map((ev) => ev["event"])).toEqual(["active", "completed"]);
    await expect(e.startRun(plan({ targets: { nodes: ["edge-joined"] } }))).rejects.toThrow(/targets\.nodes: not in the config: edge-joined/);
  }, 30_000);

  it("a self-hosted node announces itself with its processes and version (npm run node with NODE_ANNOUNCE_URL)", async () => {
    const port = await freePort();
    const e = engine(suite.stack.config({ nodeUrlAllow: [`http://127.0.0.1:${port}`], registryToken: "reg-secret" }), false);
    const ops = await serveOps(e, 0, "127.0.0.1");
    const opsPort = (ops.address() as { port: number }).port;
    const node = await startEdgeNode({
      vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: suite.stack.edges[0]!.redis.url, PREWARM_TOKEN: TOKEN, NODE_ANNOUNCE_URL: `http://127.0.0.1:${opsPort}`, NODE_ANNOUNCE_TOKEN: "reg-secret", NODE_NAME: "edge-self", NODE_PUBLIC_URL: `http://127.0.0.1:${port}` },
      processes: 1,
      port,
    });
    try {
      const entry = await until(async () => (await e.registry.list()).find((n) => n.name === "edge-self"), (x) => x !== undefined, 10_000);
      expect(entry).toMatchObject({ url: `http://127.0.0.1:${port}`, region: "cn-east", processes: 1, source: "announced", state: "live", version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
    } finally {
      await node.stop();
      ops.close();
    }
  }, 60_000);

  it("prewarm nodes add refuses a URL the config does not allow, naming the rule, not the URL", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-nodes-"));
    const configFile = path.join(dir, "config.yaml");
    writeFileSync(configFile, stringify(suite.stack.config({ nodeUrlAllow: ["https://*.edge.example.com"] })));
    try {
      const r = await cli(["nodes", "add", "edge-x", "http://169.254.169.254", "cn-east", "--config", configFile]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/url: not allowed by the config's nodeUrlAllow/);
      expect(r.err).not.toContain("169.254");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("run accounting", () => {
  it("counts a batch recorded twice (a re-run after a crash between warming and acknowledging) once", async () => {
    const e = engine(suite.stack.config(), false);
    const meta = { runId: "acct-1", plan: "p", planKey: "p.x", trigger: "test", jobId: "acct-1", createdAt: Date.now(), deadline: Date.now() + 60_000, failureThreshold: 0, totalSkus: 3, batchSize: 1000, nodes: [] };
    expect(await e.store.open(meta)).toBe(true);
    expect(await e.store.open(meta)).toBe(false);
    const expanded = { ...meta, nodes: [{ name: "edge-east", region: "cn-east", url: "http://x", batches: 1 }] };
    expect(await e.store.expanded(expanded)).toBe("expanded");
    expect(await e.store.expanded(expanded)).toBe("again");
    const result = { runId: "acct-1", node: "edge-east", batchId: "acct-1.0", skus: 3, warmed: 2, fromEdge: 2, fromRegional: 0, failedByCode: { not_found: 1 }, batchFailed: false, latencyMs: 12, samples: [{ sku: "a", code: "not_found" }] };
    expect(await e.store.record(result)).toBe(true);
    expect(await e.store.record(result)).toBe(false);
    const r = (await e.store.report("acct-1"))!;
    expect(r.nodes[0]).toMatchObject({ settled: 1, warmed: 2, failed: 1, failedByCode: { not_found: 1 } });
    expect(r.finishedAt).not.toBeNull();
    expect(await e.store.failures("acct-1")).toHaveLength(1);
  });
});

describe("verify", () => {
  it("says per node which planned keys are warm and valid long enough, warming nothing", async () => {
    const skus = suite.stack.skus.slice(0, 600);
    // Earlier tests warmed these: start cold on both nodes.
    for (const x of suite.stack.edges) {
      const res = await fetch(`${x.node.url}/v1/purge`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ skus }) });
      expect(res.status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 1200)); // a node's other process drops its copies within 1 s (SPEC §7)
    const e = engine(suite.stack.config());
    const east = await watchRun(e, await e.startRun(plan({ name: "verify-east", skus: { list: skus }, ttl: 120, targets: { regions: ["cn-east"] } })), { bars: false, pollMs: 100 });
    expect(east.status).toBe("done");
    const p = plan({ name: "verify-all", skus: { list: skus }, ttl: 120 });
    const before = await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)));
    for (let i = 0; i < 2; i++) {
      const r = await verifyPlan(e.cfg, p, skus);
      expect(r.nodes.map((n) => [n.name, n.ready, n.stragglers])).toEqual([
        ["edge-east", 600, {}],
        ["edge-north", 0, { not_cached: 600 }],
      ]);
      expect(r).toMatchObject({ total: 1200, ready: 600, readyPct: 50, goal: 1, met: false });
    }
    expect(await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)))).toEqual(before);

    // Valid now, but not until now + 10 minutes: expires_early.
    const long = await verifyPlan(e.cfg, plan({ name: "verify-all", skus: { list: skus }, ttl: 120, targets: { regions: ["cn-east"] }, verify: { margin: "10m" } }), skus);
    expect(long.nodes[0]!.stragglers).toEqual({ expires_early: 600 });

    await watchRun(e, await e.startRun(p), { bars: false, pollMs: 100 });
    expect(await verifyPlan(e.cfg, p, skus)).toMatchObject({ ready: 1200, met: true });
  });

  it("counts a node that does not answer as node_unreachable", async () => {
    const cfg = suite.stack.config();
    cfg.nodes.push(await suite.stack.deadNode());
    const r = await verifyPlan(cfg, plan({ targets: { nodes: ["edge-dead"] }, skus: { list: suite.stack.skus.slice(0, 150) } }), suite.stack.skus.slice(0, 150));
    expect(r.nodes).toMatchObject([{ name: "edge-dead", ready: 0, stragglers: { node_unreachable: 150 } }]);
    expect(r.met).toBe(false);
  });

  it("a campaign verifies on its own before T0, re-warms the stragglers, and keeps the readiness in that run", async () => {
    const skus = suite.stack.skus.slice(2200, 2230);
    for (const x of suite.stack.edges) {
      await fetch(`${x.node.url}/v1/purge`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ skus }) });
    }
    await new Promise((r) => setTimeout(r, 1200)); // a node's other process drops its copies within 1 s (SPEC §7)
    const e = engine(suite.stack.config());
    // Half the keys warm on one node only: 15 stragglers there, 30 on the other.
    await watchRun(e, await e.startRun(plan({ name: "pre", skus: { list: skus.slice(0, 15) }, ttl: 60, targets: { nodes: ["edge-east"] } })), { bars: false, pollMs: 50 });
    const t0 = new Date(Math.ceil((Date.now() + 60_000) / 1000) * 1000).toISOString();
    const p = plan({ name: "ready-check", skus: { list: skus }, ttl: 60, schedule: { campaign: { t0, lead: "50s", refreshEvery: "5s", until: "5s", verifyBefore: "40s" } } });
    const entry = await schedulePlan(e, p);
    expect(entry.verifyAt).toBe(Date.parse(t0) - 40_000);
    const verify = (await e.runs.getDelayed()).find((j) => j.name === "verify")!;
    await verify.promote(); // drive time: T0 − 40 s is now
    const readiness = (await until(() => e.store.readiness("ready-check"), (r) => r !== null, 20_000))!;
    await unschedulePlan(e, p.name);
    expect(readiness.before.nodes.map((n) => [n.name, n.ready, n.stragglers])).toEqual([
      ["edge-east", 15, { not_cached: 15 }],
      ["edge-north", 0, { not_cached: 30 }],
    ]);
    expect(readiness.after).toMatchObject({ readyPct: 100, met: true });
    const run = (await e.store.report(readiness.runId!))!;
    expect(run).toMatchObject({ trigger: "verify", status: "done", totalSkus: 30, readiness: { runId: readiness.runId } });
    expect(run.nodes.map((n) => [n.name, n.warmed])).toEqual([["edge-east", 30], ["edge-north", 30]]);
    expect((await listSchedules(e)).find((x) => x.plan === "ready-check")).toBeUndefined();
  }, 30_000);

  it("asks a campaign's keys to last past T0, or past the next refresh before T0", () => {
    const t0 = Date.parse("2030-11-11T00:00:00Z");
    const p = plan({ ttl: 3600, schedule: { campaign: { t0: "2030-11-11T00:00:00Z", lead: "10m", refreshEvery: "1m", until: "5m" } }, verify: { margin: "30s" } });
    const cases: [string, number, number][] = [
      ["before the first run: that run re-warms", t0 - 3_600_000, t0 - 600_000 + 30_000],
      ["between refreshes: the next refresh", t0 - 590_000, t0 - 540_000 + 30_000],
      ["in the last refresh period: T0", t0 - 30_000, t0 + 30_000],
      ["after T0: now", t0 + 5_000, t0 + 35_000],
    ];
    for (const [what, now, want] of cases) expect(requiredUntil(p, now), what).toBe(want);
    expect(requiredUntil(plan({ verify: { margin: "45s" } }), 1000)).toBe(46_000);
  });
});

describe("the warmer protects what it warms", () => {
  it("paces each node at its SKUs/s limit, over all scheduler processes, and pushes it back after a slowdown", async () => {
    const e = engine(suite.stack.config(), false);
    const a = new Pacer(e.redis, e.cfg.prefix);
    const b = new Pacer(e.redis, e.cfg.prefix); // another scheduler process
    const t = 1_000_000;
    expect(await a.take("n1", 100, 1000, t)).toBe(0);
    expect(await b.take("n1", 100, 1000, t)).toBe(100);
    expect(await a.take("n1", 100, 1000, t + 50)).toBe(150);
    expect(await a.take("n2", 100, 1000, t)).toBe(0); // nodes are paced apart
    await b.slow("n2", 2000, t);
    expect(await a.take("n2", 100, 0, t)).toBe(2100); // no limit, but the slowdown holds
  });

  it.each([
    ["a batch warmed from the edge", { warmed: 100, fromRegional: 0, failed: [] }, null],
    ["most of a batch from the region", { warmed: 100, fromRegional: 60, failed: [] }, "regional_share"],
    ["half of a batch from the region (not over the share)", { warmed: 100, fromRegional: 50, failed: [] }, null],
    ["regional_unavailable SKUs (the breaker is open)", { warmed: 90, fromRegional: 0, failed: [{ sku: "a", code: "regional_unavailable" }] }, "breaker"],
    ["not_found SKUs only", { warmed: 90, fromRegional: 0, failed: [{ sku: "a", code: "not_found" }] }, null],
  ] as const)("slows a node down after %s: %s", (_what, answer, want) => {
    expect(slowdownReason({ ...answer, failed: [...answer.failed] }, { regionalShare: 0.5, slowdownMs: 2000 })).toBe(want);
  });

  it("keeps a run to the node's SKUs/s limit, and the report says how long it waited", async () => {
    const e = engine(suite.stack.config({ batchSize: 100, maxSkusPerSecondPerNode: 2000, concurrencyPerNode: 4 }));
    const r = await watchRun(e, await e.startRun(plan({ name: "paced", skus: { list: suite.stack.skus.slice(0, 1000) }, targets: { nodes: ["edge-east"] } })), { bars: false, pollMs: 50 });
    expect(r.status).toBe("done");
    // 10 batches of 100 at 2,000 SKUs/s: the last may start 450 ms after the first.
    expect(r.finishedAt! - r.createdAt).toBeGreaterThanOrEqual(450);
    expect(r.nodes[0]!.pacedMs).toBeGreaterThanOrEqual(450);
  });
});

describe("prewarm check", () => {
  it("estimates each node's time from its recent runs and refuses a campaign whose lead is too short, sending nothing", async () => {
    const cfg = suite.stack.config();
    const e = engine(cfg);
    const campaign = (lead: string) => plan({ name: "check-me", ttl: 60, schedule: { campaign: { t0: "2030-11-11T00:00:00Z", lead, refreshEvery: "5s", until: "5s" } } });
    const fresh = await checkPlan(cfg, e.store, campaign("10s"), suite.stack.skus);
    expect(fresh.nodes.map((n) => n.estimateMs)).toEqual([null, null]);
    expect(fresh.problems[0]).toMatch(/^edge-east: no measured throughput/);
    expect(fresh.ok).toBe(true); // nothing known, nothing refused: said so

    expect((await watchRun(e, await e.startRun(plan({ skus: { list: suite.stack.skus.slice(0, 1000) } })), { bars: false, pollMs: 50 })).status).toBe("done");
    const before = await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)));
    const roomy = await checkPlan(cfg, e.store, campaign("10m"), suite.stack.skus);
    expect(roomy.ok).toBe(true);
    for (const n of roomy.nodes) {
      expect(n.runsMeasured).toBe(1);
      expect(n.measuredSkusPerSecond).toBeGreaterThan(0);
      expect(n.estimateMs).toBeCloseTo((SKUS / n.measuredSkusPerSecond!) * 1000, 6);
    }
    // At 100 SKUs/s a node needs 25 s for 2,500 SKUs: a 10 s lead is refused, naming the node.
    const slow = await checkPlan({ ...cfg, maxSkusPerSecondPerNode: 100 }, e.store, campaign("10s"), suite.stack.skus);
    expect(slow.ok).toBe(false);
    expect(slow.problems).toEqual([
      expect.stringMatching(/^edge-east: warming 2500 SKUs takes about 25\.0 s, but the campaign allows 10\.0 s/),
      expect.stringMatching(/^edge-east: a pass over 2500 SKUs takes about 25\.0 s, longer than refreshEvery \(5\.0 s\)/),
      expect.stringMatching(/^edge-north: warming/),
      expect.stringMatching(/^edge-north: a pass/),
    ]);
    expect(await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)))).toEqual(before);
  });

  it("is answered by POST /v1/check on the ops API: the report prewarm check gives, sending nothing; a bad plan is 400 invalid_plan", async () => {
    const cfg = suite.stack.config({ maxSkusPerSecondPerNode: 100 });
    const e = engine(cfg);
    const app = opsApp(e);
    const raw = { name: "check-api", skus: { list: suite.stack.skus }, ttl: 60, schedule: { campaign: { t0: "2030-11-11T00:00:00Z", lead: "10s", refreshEvery: "5s", until: "5s" } } };
    const before = await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)));
    const res = await app.request("/v1/check", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ plan: raw }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Awaited<ReturnType<typeof checkPlan>>;
    expect(body).toEqual(await checkPlan(cfg, e.store, parsePlan(raw), suite.stack.skus));
    expect(body.ok).toBe(false); // 2,500 SKUs at 100 SKUs/s do not fit a 10 s lead
    expect(body.problems[0]).toMatch(/^edge-east: warming 2500 SKUs takes about 25\.0 s/);
    const bad = await app.request("/v1/check", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ plan: { name: "x", skus: { list: ["no spaces"] } } }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_plan");
    expect(await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)))).toEqual(before);
  });
});

describe("dashboards", () => {
  /** The names a Prometheus text exposition exports: its samples', and its declared metrics' (a labelled metric has no sample before its first label set). */
  const exported = (text: string): string[] =>
    text.split("\n").flatMap((l) => {
      const declared = /^# TYPE (\S+) (\S+)$/.exec(l);
      if (declared) return declared[2] === "histogram" ? [`${declared[1]}_bucket`, `${declared[1]}_sum`, `${declared[1]}_count`] : [declared[1]!];
      return l === "" || l.startsWith("#") ? [] : [l.split(/[{ ]/)[0]!];
    });

  it("the Grafana dashboard queries only series the nodes, the region and the scheduler export, and Prometheus scrapes all three", async () => {
    const e = engine(suite.stack.config(), false);
    const regional = await startRegional({ redisUrl: suite.stack.schedulerRedis.url });
    try {
      const ops = await opsApp(e).request("/metrics");
      expect(ops.status).toBe(200);
      const series = new Set([
        ...exported(await (await fetch(`${suite.stack.edges[0]!.node.url}/metrics`)).text()),
        ...exported(await (await fetch(`${regional.url}/metrics`)).text()),
        ...exported(await ops.text()),
      ]);
      expect(series).toContain("prewarm_queue_jobs");
      const dashboard = JSON.parse(readFileSync(path.join(ROOT, "deploy/grafana/dashboards/edge-prewarm.json"), "utf8")) as { uid: string; panels: { title: string; targets: { expr: string }[] }[] };
      const queried = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b(?:edge|regional|prewarm)_[a-z0-9_]+/g)].map((m) => `${p.title}: ${m[0]}`)));
      expect(queried.length).toBeGreaterThan(15);
      expect(queried.filter((q) => !series.has(q.slice(q.lastIndexOf(": ") + 2)))).toEqual([]);
      for (const want of ["Hit ratio per node", "Prewarm SKUs/s per node", "Readiness per campaign and node", "Regional requests", "Prewarm batch latency (p50, p99)"]) {
        expect(dashboard.panels.map((p) => p.title)).toContain(want);
      }
      const prom = parseYaml(readFileSync(path.join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8")) as { scrape_configs: { job_name: string; metrics_path: string }[] };
      expect(prom.scrape_configs.map((j) => [j.job_name, j.metrics_path])).toEqual([["edge-nodes", "/metrics"], ["regional", "/metrics"], ["prewarm-scheduler", "/metrics"]]);
    } finally {
      await regional.close();
    }
  });

  it("the scheduler's /metrics counts its queues' jobs and needs the ops token", async () => {
    const e = engine(suite.stack.config({ opsToken: "ops-secret" }), false);
    await e.startRun(plan({ skus: { list: suite.stack.skus.slice(0, 10) } }));
    const app = opsApp(e);
    expect((await app.request("/metrics")).status).toBe(401);
    const text = await (await app.request("/metrics", { headers: { Authorization: "Bearer ops-secret" } })).text();
    expect(text).toMatch(/^prewarm_queue_jobs\{queue="runs",state="waiting"\} 1$/m);
    expect(text).toMatch(/^prewarm_runs_open 1$/m);
    expect(text).toMatch(/^prewarm_scheduler_redis_up 1$/m);
  });
});

describe("supersession", () => {
  it("a newer run of the same plan supersedes an older run's unsent batches on each node: reported superseded, not failed, and not sent", async () => {
    const e = engine(suite.stack.config({ batchSize: 500 }));
    const queues = [e.batches];
    // Nothing left queued by an earlier test (it would be sent, and counted, below).
    await until(async () => {
      const c = await e.batches.getJobCounts("waiting", "active", "delayed", "prioritized");
      return Object.values(c).every((n) => n === 0);
    }, Boolean);
    // Nodes too slow to have sent anything yet: their queues hold the batches of both runs.
    await Promise.all(queues.map((q) => q.pause()));
    const before = await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)));
    const older = await e.startRun(plan());
    await until(() => e.store.isExpanded(older), Boolean);
    const newer = await e.startRun(plan());
    await until(async () => (await e.store.latest(planKey(plan()), "edge-east")) > 0 && (await e.store.latest(planKey(plan()), "edge-north")) > 0, Boolean);
    // The same plan name with other SKUs is another plan: it supersedes nothing.
    const edited = await e.startRun(plan({ skus: { list: suite.stack.skus.slice(0, 10) } }));
    await until(() => e.store.isExpanded(edited), Boolean);
    await Promise.all(queues.map((q) => q.resume()));

    const [o, n, d] = await Promise.all([older, newer, edited].map((id) => watchRun(e, id, { bars: false, pollMs: 100 })));
    expect(o!.status).toBe("superseded"); // finished, but not a clean success: what it left unsent is counted
    for (const node of o!.nodes) expect([node.name, node.warmed, node.failed, node.superseded, node.settled]).toEqual([node.name, 0, 0, SKUS, 5]);
    expect(o!.superseded).toBe(2 * SKUS);
    for (const node of n!.nodes) expect([node.name, node.warmed, node.superseded]).toEqual([node.name, SKUS, 0]);
    for (const node of d!.nodes) expect([node.name, node.warmed, node.superseded]).toEqual([node.name, 10, 0]);
    const after = await Promise.all(suite.stack.edges.map((x) => suite.stack.warmedCounter(x.node.url)));
    expect(after.map((a, i) => a - before[i]!)).toEqual([SKUS + 10, SKUS + 10]);
  });
});

describe("runs that never finish", () => {
  /** An edge node that accepts connections and never answers. */
  async function hangingNode(): Promise<{ node: { name: string; url: string; region: string }; server: Server; sockets: Socket[] }> {
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    return { node: { name: "edge-hang", url: `http://127.0.0.1:${port}`, region: "us-west" }, server, sockets };
  }

  it("a run whose expansion fails for a reason that is not the plan's (a Redis error) fails with that reason", async () => {
    const e = engine(suite.stack.config());
    await e.redis.set("hot-not-a-set", "x");
    const r = await watchRun(e, await e.startRun(plan({ skus: { hot: { key: "hot-not-a-set", top: 5 } } })), { bars: false, pollMs: 100 });
    await e.redis.del("hot-not-a-set");
    expect(r.status).toBe("failed");
    expect(r.reason).toMatch(/^expansion failed: WRONGTYPE/);
  }, 30_000);

  it("a run opened by a process that died before enqueuing it is closed at its deadline, by the CLI watching it", async () => {
    const e = engine(suite.stack.config(), false); // no workers: only the watcher can close it
    const now = Date.now();
    const runId = "opened-then-crashed";
    await e.store.open({ runId, plan: "p", planKey: "p.x", trigger: "cli", jobId: runId, createdAt: now, deadline: now + 300, failureThreshold: 0, totalSkus: 0, batchSize: 1000, nodes: [] });
    const r = await watchRun(e, runId, { bars: false, pollMs: 50 });
    expect(r.status).toBe("failed");
    expect(r.reason).toMatch(/not expanded into batches by the deadline \(the run's job is missing/);
    expect(r.finishedAt! - r.deadline).toBeGreaterThanOrEqual(0);
    expect(await e.store.overdue(Date.now())).not.toContain(runId);
  });

  it("a run expanded by a process that died before enqueuing its batches is closed by the workers' deadline sweep", async () => {
    const e = engine(suite.stack.config());
    const now = Date.now();
    const runId = "expanded-then-crashed";
    const meta = { runId, plan: "p", planKey: "p.x", trigger: "cli", jobId: runId, createdAt: now, deadline: now + 300, failureThreshold: 0, totalSkus: 1500, batchSize: 1000, nodes: [] };
    await e.store.open(meta);
    await e.store.expanded({ ...meta, nodes: [{ name: "edge-east", region: "cn-east", url: suite.stack.edges[0]!.node.url, batches: 2 }] });
    const r = await until(() => e.store.report(runId), (x) => x?.finishedAt != null, 10_000);
    expect(r!.status).toBe("failed");
    expect(r!.nodes[0]).toMatchObject({ settled: 2, failed: 1500, failedByCode: { not_enqueued: 1500 } });
    expect(r!.reason).toBe("closed at its deadline with 2 of 2 batches unsettled (2 not_enqueued)");
  });

  it("a batch whose scheduler process died while it was in flight, past the stall limit, fails as stalled", async () => {
    const hang = await hangingNode();
    const cfg = suite.stack.config({ lockDurationMs: 1000, maxStalledCount: 0, requestTimeoutMs: 120_000 });
    cfg.nodes.push(hang.node);
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-stall-"));
    const configFile = path.join(dir, "config.yaml");
    writeFileSync(configFile, stringify(cfg));
    const control = engine(cfg, false);
    const runId = await control.startRun(plan({ name: "stall", targets: { nodes: ["edge-hang"] }, skus: { list: suite.stack.skus.slice(0, 10) } }));
    const child = spawnCli(["worker", "--config", configFile], "ignore");
    try {
      await until(() => control.batches.getActiveCount(), (n) => n === 1, 30_000);
      await until(async () => hang.sockets.length, (n) => n > 0); // the batch is on the wire
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    }
    const takeover = engine(cfg); // another scheduler process, with workers
    const r = await watchRun(takeover, runId, { bars: false, pollMs: 100 });
    hang.sockets.forEach((x) => x.destroy());
    hang.server.close();
    expect(r.status).toBe("failed");
    expect(r.nodes[0]).toMatchObject({ name: "edge-hang", failed: 10, failedByCode: { stalled: 10 } });
  }, 60_000);
});

describe("the scheduler's Redis down", () => {
  it("prewarm run and status fail within redisTimeoutMs naming the Redis (never its password), with exit code 3", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-noredis-"));
    const port = await freePort();
    const configFile = path.join(dir, "config.yaml");
    writeFileSync(configFile, stringify({ ...suite.stack.config(), redis: `redis://:hunter2@127.0.0.1:${port}`, redisCluster: false, redisTimeoutMs: 1000 }));
    writeFileSync(path.join(dir, "plan.yaml"), stringify({ name: "p", skus: { list: ["sku-1"] } }));
    try {
      for (const args of [["run", path.join(dir, "plan.yaml")], ["status", "some-run"]]) {
        const r = await cli([...args, "--config", configFile], 30_000);
        expect(r.code, r.err).toBe(3);
        expect(r.err).toContain(`the scheduler's Redis redis://:***@127.0.0.1:${port} did not answer within 1000 ms`);
        expect(r.err).not.toContain("hunter2");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("the ops API answers /healthz and its routes 503 within redisTimeoutMs; a watcher gives up naming the Redis", async () => {
    const redis = await startRedis();
    try {
      const e = engine({ ...suite.stack.config({ redisTimeoutMs: 500 }), redis: redis.url, redisCluster: false }, false);
      const app = opsApp(e);
      expect((await app.request("/healthz")).status).toBe(200);
      const runId = await e.startRun(plan());
      await redis.stop();
      const health = await app.request("/healthz");
      expect(health.status).toBe(503);
      expect(await health.json()).toEqual({ ok: false, error: "the scheduler's Redis is not answering" });
      const runs = await app.request("/v1/runs");
      expect(runs.status).toBe(503);
      expect(await runs.json()).toMatchObject({ error: { code: "unavailable" } });
      await expect(watchRun(e, runId, { bars: false, pollMs: 50 })).rejects.toThrow(`the scheduler's Redis ${redis.url} did not answer within 500 ms while watching run ${runId}`);
    } finally {
      await redis.stop();
    }
  });
});

describe("a scheduler process killed mid-run", () => {
  function worker(configFile: string): ChildProcess {
    return spawnCli(["worker", "--config", configFile], "pipe");
  }

  it("completes the run after a restart, with no batch lost and none counted twice", async () => {
    const cfg = suite.stack.config({ concurrencyPerNode: 1, batchSize: 50, lockDurationMs: 1000 });
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-test-"));
    const configFile = path.join(dir, "config.yaml");
    writeFileSync(configFile, stringify(cfg));
    const control = engine(cfg, false); // enqueues and watches only
    const runId = await control.startRun(plan());
    const batches = SKUS / 50;

    const first = worker(configFile);
    let settled = 0;
    for (let i = 0; i < 600 && settled < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      settled = (await control.store.report(runId))?.nodes.reduce((s, n) => s + n.settled, 0) ?? 0;
    }
    first.kill("SIGKILL");
    await new Promise((r) => first.once("exit", r));
    const mid = (await control.store.report(runId))!;
    expect(mid.finishedAt).toBeNull();
    const settledAtKill = mid.nodes.reduce((s, n) => s + n.settled, 0);
    expect(settledAtKill).toBeGreaterThan(0);
    expect(settledAtKill).toBeLessThan(batches * 2);

    const second = worker(configFile);
    try {
      const r = await watchRun(control, runId, { bars: false, pollMs: 200 });
      expect(r.status, JSON.stringify(r.nodes.map((n) => [n.name, n.failedByCode]))).toBe("done");
      for (const n of r.nodes) expect([n.name, n.settled, n.warmed, n.skus, n.failed]).toEqual([n.name, batches, SKUS, SKUS, 0]);
    } finally {
      second.kill("SIGTERM");
      await new Promise((r) => second.once("exit", r));
    }
  }, 120_000);
});

describe("plans", () => {
  const cases: { name: string; doc: unknown; problem: RegExp }[] = [
    { name: "missing skus", doc: { name: "p" }, problem: /^skus: / },
    { name: "a bad SKU id in the list", doc: { name: "p", skus: { list: ["ok-1", "bad sku"] } }, problem: /^skus\.list\[1\]: not a SKU id.*"bad sku"/ },
    { name: "an upper-case plan name", doc: { name: "Flash", skus: { list: ["a"] } }, problem: /^name: must be lowercase/ },
    { name: "a ttl out of range", doc: { name: "p", skus: { list: ["a"] }, ttl: 0 }, problem: /^ttl: / },
    { name: "an unknown field", doc: { name: "p", skus: { list: ["a"] }, tll: 30 }, problem: /tll/ },
    { name: "a bad campaign T0", doc: { name: "p", skus: { list: ["a"] }, schedule: { campaign: { t0: "tomorrow", lead: "5m", refreshEvery: "30s", until: "10m" } } }, problem: /^schedule\.campaign\.t0: must be an ISO-8601/ },
    { name: "a campaign T0 without a zone", doc: { name: "p", skus: { list: ["a"] }, schedule: { campaign: { t0: "2026-11-11T00:00:00", lead: "5m", refreshEvery: "30s", until: "10m" } } }, problem: /^schedule\.campaign\.t0: must be an ISO-8601 date-time with a zone/ },
    { name: "a cron tz that is no time zone", doc: { name: "p", skus: { list: ["a"] }, schedule: { cron: "0 3 * * *", tz: "Mars/Olympus_Mons" } }, problem: /^schedule\.tz: must be an IANA time zone name/ },
    { name: "a campaign whose ttl is shorter than refreshEvery", doc: { name: "p", skus: { list: ["a"] }, ttl: 20, schedule: { campaign: { t0: "2026-11-11T00:00:00Z", lead: "5m", refreshEvery: "30s", until: "10m" } } }, problem: /^ttl: minus ttlJitter must be at least the campaign's refreshEvery \(30 s\)/ },
    { name: "a ttlJitter without a ttl", doc: { name: "p", skus: { list: ["a"] }, ttlJitter: 5 }, problem: /^ttlJitter: must be below the plan's ttl \(set ttl\)/ },
    { name: "a ttlJitter not below the ttl", doc: { name: "p", skus: { list: ["a"] }, ttl: 30, ttlJitter: 30 }, problem: /^ttlJitter: must be below the plan's ttl \(30 s\)/ },
    { name: "a bad duration", doc: { name: "p", skus: { list: ["a"] }, schedule: { campaign: { t0: "2026-11-11T00:00:00Z", lead: "5 minutes", refreshEvery: "30s", until: "10m" } } }, problem: /^schedule\.campaign\.lead: lead must be a duration/ },
    { name: "a tag of an unknown kind", doc: { name: "p", skus: { list: ["a"] }, tags: ["label:ok", "colour:red"] }, problem: /^tags\[1\]: "colour:red" is not kind:value with kind one of sku, promo, wh, plan, campaign, label/ },
    { name: "a tag value with a space", doc: { name: "p", skus: { list: ["a"] }, tags: ["label:two words"] }, problem: /^tags\[0\]: the value of "label:two words" must be 1 to 128 printable ASCII/ },
    { name: "more than 15 tags", doc: { name: "p", skus: { list: ["a"] }, tags: Array.from({ length: 16 }, (_, i) => `label:l${i}`) }, problem: /^tags: at most 15 tags: a run adds plan:\{name\}/ },
    { name: "a hot set without top", doc: { name: "p", skus: { hot: { key: "hot" } } }, problem: /^skus\.hot\.top: / },
  ];
  it("accepts a cron with an IANA tz and a campaign T0 with a zone, as absolute instants", () => {
    const cron = parsePlan({ name: "p", skus: { list: ["a"] }, schedule: { cron: "0 3 * * *", tz: "Asia/Shanghai" } });
    expect(cron.schedule).toMatchObject({ cron: "0 3 * * *", tz: "Asia/Shanghai" });
    const zoned = parsePlan({ name: "p", skus: { list: ["a"] }, schedule: { campaign: { t0: "2026-11-11T00:00:00+08:00", lead: "5m", refreshEvery: "30s", until: "10m" } } });
    expect((zoned.schedule as { campaign: { t0: number } }).campaign.t0).toBe(Date.UTC(2026, 10, 10, 16, 0, 0));
  });

  for (const c of cases) {
    it(`rejects ${c.name} with an error naming the field`, () => {
      let problems: readonly string[] = [];
      try {
        parsePlan(c.doc, "plan.yaml");
      } catch (e) {
        problems = (e as { problems: readonly string[] }).problems;
      }
      expect(problems.some((p) => c.problem.test(p)), problems.join("\n")).toBe(true);
    });
  }

  it("accepts the example plans and config shipped in plans/", () => {
    expect(loadPlan(path.join(ROOT, "plans/singles-day-flash.yaml")).schedule.campaign?.refreshEvery).toBe(30_000);
    expect(loadPlan(path.join(ROOT, "plans/nightly-catalogue.yaml")).skus.list).toEqual(["iphone15-256g-00000", "sneaker-air-00001", "tv-55-oled-00002"]);
    expect(loadConfig(path.join(ROOT, "plans/prewarm.config.example.yaml"), { PREWARM_TOKEN: "t", OPS_TOKEN: "", REGISTRY_TOKEN: "" }).nodes).toHaveLength(3);
    expect(() => loadConfig(path.join(ROOT, "plans/prewarm.config.example.yaml"), {})).toThrow(/token: environment variable PREWARM_TOKEN is not set/);
  });

  it("rejects a plan naming a node the config lacks, before anything is enqueued", async () => {
    const e = engine(suite.stack.config(), false);
    await expect(e.startRun(plan({ targets: { nodes: ["edge-mars"] } }))).rejects.toThrow(/targets\.nodes: not in the config: edge-mars/);
    expect(await e.runs.count()).toBe(0);
  });

  it("warms the top N of a Redis sorted set of hot SKUs", async () => {
    const cfg = suite.stack.config();
    const e = engine(cfg);
    await e.redis.zadd("hot-skus", 5, suite.stack.skus[10]!, 9, suite.stack.skus[20]!, 1, suite.stack.skus[30]!);
    const r = await watchRun(e, await e.startRun(plan({ skus: { hot: { key: "hot-skus", top: 2 } } })), { bars: false, pollMs: 100 });
    expect(r.totalSkus).toBe(2);
    expect(r.nodes.map((n) => n.warmed)).toEqual([2, 2]);
    await e.redis.del("hot-skus");
  });
});

describe("ops API", () => {
  it("starts a run from a posted plan, reports its progress, refuses bad plans precisely, and serves the dashboard", async () => {
    const e = engine(suite.stack.config());
    const app = opsApp(e);
    const bad = await app.request("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ plan: { name: "x", skus: { list: ["no spaces"] } } }) });
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { code: string; details: string[] } };
    expect(badBody.error.code).toBe("invalid_plan");
    expect(badBody.error.details[0]).toMatch(/^skus\.list\[0\]: not a SKU id/);

    const res = await app.request("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ plan: { name: "api-plan", skus: { list: suite.stack.skus.slice(0, 20) } } }) });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    await watchRun(e, runId, { bars: false, pollMs: 100 });
    const report = (await (await app.request(`/v1/runs/${runId}`)).json()) as { status: string; warmed: number };
    expect(report).toMatchObject({ status: "done", warmed: 40 });
    const list = (await (await app.request("/v1/runs")).json()) as { runs: { runId: string }[] };
    expect(list.runs.map((r) => r.runId)).toContain(runId);
    expect((await app.request("/v1/runs/nope")).status).toBe(404);
    const board = await app.request("/admin/queues");
    expect(board.status).toBe(200);
    expect(await board.text()).toContain("<html");
  });
});

describe("hot SKUs from the nodes", () => {
  it("adds up the nodes' reads per SKU into the sorted set plans read, replacing it whole", async () => {
    const e = engine(suite.stack.config(), false);
    const [x, y] = [suite.stack.skus[1500]!, suite.stack.skus[1501]!];
    const [east, north] = suite.stack.edges.map((n) => n.node.url);
    for (let i = 0; i < 5; i++) await (await fetch(`${east}/v1/skus/${x}`)).body?.cancel();
    for (let i = 0; i < 3; i++) await (await fetch(`${north}/v1/skus/${x}`)).body?.cancel();
    for (let i = 0; i < 2; i++) await (await fetch(`${east}/v1/skus/${y}`)).body?.cancel();
    await e.redis.zadd("hot-collected", 99, "stale-sku");
    // Each node process adds its reads to the node's counts about once a second.
    // (Each of a node's processes adds its own reads, about once a second.)
    let scores = [0, 0];
    let last: Awaited<ReturnType<typeof collectHotSkus>> | undefined;
    for (let i = 0; i < 80 && (scores[0]! < 8 || scores[1]! < 2); i++) {
      await new Promise((r) => setTimeout(r, 100));
      last = await collectHotSkus(e.cfg, e.redis, "hot-collected", 1000);
      scores = [Number(await e.redis.zscore("hot-collected", x)), Number(await e.redis.zscore("hot-collected", y))];
    }
    expect(last!.nodes.map((n) => n.error)).toEqual([undefined, undefined]);
    expect(scores).toEqual([8, 2]);
    expect(await e.redis.zscore("hot-collected", "stale-sku")).toBeNull();
    await e.redis.del("hot-collected");
  });
});

describe("change notices", () => {
  it("re-warms the SKUs of the notices of one window in one run, de-duplicated, on the nodes of the regions named", async () => {
    const e = engine(suite.stack.config());
    const app = opsApp(e);
    const notify = (body: unknown): Promise<Response> => Promise.resolve(app.request("/v1/changes", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }));
    const [a, b, north] = await Promise.all([
      notify({ skus: suite.stack.skus.slice(0, 30) }),
      notify({ skus: suite.stack.skus.slice(20, 50) }),
      notify({ skus: suite.stack.skus.slice(0, 5), regions: ["cn-north"] }),
    ]);
    expect([a.status, b.status, north.status]).toEqual([202, 202, 202]);
    const [ra, rb, rn] = (await Promise.all([a.json(), b.json(), north.json()])) as { runId: string }[];
    expect(ra!.runId).toBe(rb!.runId);
    expect(rn!.runId).not.toBe(ra!.runId);
    const all = await watchRun(e, ra!.runId, { bars: false, pollMs: 100 });
    expect(all).toMatchObject({ plan: "changes", trigger: "changes", totalSkus: 50, status: "done" });
    expect(all.nodes.map((n) => [n.name, n.warmed])).toEqual([["edge-east", 50], ["edge-north", 50]]);
    const only = await watchRun(e, rn!.runId, { bars: false, pollMs: 100 });
    expect(only.nodes.map((n) => [n.name, n.warmed])).toEqual([["edge-north", 5]]);
  });

  it("refuses a notice with a bad SKU or a region no node serves, naming it", async () => {
    const app = opsApp(engine(suite.stack.config()));
    for (const [body, problem] of [
      [{ skus: ["ok-1", "not ok"] }, /skus\[1\]: not a SKU id/],
      [{ skus: ["ok-1"], regions: ["mars-1"] }, /targets\.regions: no configured node in mars-1/],
      [{ skus: [] }, /skus: must list at least one SKU/],
    ] as const) {
      const res = await app.request("/v1/changes", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(JSON.stringify(await res.json())).toMatch(problem);
    }
  });
});

describe("ops API, closed", () => {
  it("refuses a posted plan that would read a file on the scheduler host or name a Redis server, without quoting anything", async () => {
    const app = opsApp(engine(suite.stack.config()));
    const post = (plan: unknown): Response | Promise<Response> =>
      app.request("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ plan }) });
    for (const file of ["/proc/self/environ", "/etc/passwd", "../../../etc/hostname"]) {
      const res = await post({ name: "x", skus: { file } });
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(text).toMatch(/skus\.file: a plan posted to the ops API may not read files/);
      expect(text).not.toMatch(/root:|PATH=|PREWARM_TOKEN|sched-test-token/);
    }
    const hot = await post({ name: "x", skus: { hot: { key: "hot-skus", top: 10, redis: "redis://10.0.0.1:6379" } } });
    expect(hot.status).toBe(400);
    expect(await hot.text()).toMatch(/skus\.hot\.redis: a plan posted to the ops API may not name a Redis server/);
  });

  it("answers 400 to bad query parameters and 413 to an oversize body", async () => {
    const app = opsApp(engine(suite.stack.config()));
    for (const q of ["abc", "0", "-1", "1.5", "100000"]) {
      const res = await app.request(`/v1/runs?limit=${q}`);
      expect(res.status, q).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "bad_request", message: expect.stringMatching(/^limit must be an integer in 1\.\.1000/) } });
    }
    expect((await app.request("/v1/runs?limit=5")).status).toBe(200);
    const big = JSON.stringify({ plan: { name: "big", skus: { list: Array.from({ length: 60_000 }, (_, i) => `sku-${String(i).padStart(12, "0")}`) } } });
    const res = await app.request("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": String(big.length) }, body: big });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large" } });
  });

  it("prewarm serve refuses to start without an opsToken, and --no-auth anywhere but loopback", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prewarm-serve-"));
    const configFile = path.join(dir, "config.yaml");
    writeFileSync(configFile, stringify({ ...suite.stack.config(), opsToken: "" }));
    const serve = (...args: string[]): Promise<{ code: number | null; err: string }> =>
      new Promise((resolve) => {
        const child = spawnCli(["serve", "--config", configFile, "--no-work", "--port", "0", ...args], "pipe");
        let err = "";
        child.stderr!.on("data", (d: Buffer) => {
          err += d.toString();
          if (err.includes("prewarm ops API on")) child.kill("SIGTERM"); // it started: that case is allowed
        });
        child.on("exit", (code) => resolve({ code, err }));
      });
    try {
      const open = await serve();
      expect(open.code).toBe(2);
      expect(open.err).toMatch(/opsToken is not set/);
      const wide = await serve("--no-auth", "--host", "0.0.0.0");
      expect(wide.code).toBe(2);
      expect(wide.err).toMatch(/--no-auth is refused for host 0\.0\.0\.0/);
      const local = await serve("--no-auth", "--host", "127.0.0.1");
      expect(local.err).toMatch(/prewarm ops API on http:\/\/127\.0\.0\.1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("names the file and the line of a bad SKU in a plan file, never the line's text", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "plan-"));
    writeFileSync(path.join(dir, "skus.txt"), "good-1\nSECRET=hunter2 not an id\n");
    try {
      expect(() => parsePlan({ name: "x", skus: { file: "skus.txt" } }, "plan.yaml", dir)).toThrow(/skus\.file .*skus\.txt:2: not a SKU id/);
      expect(() => parsePlan({ name: "x", skus: { file: "skus.txt" } }, "plan.yaml", dir)).not.toThrow(/hunter2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("schedules", () => {
  const small = (): Record<string, unknown> => ({ skus: { list: suite.stack.skus.slice(0, 10) } });

  it("keeps a working schedule when a bad update of it is refused", async () => {
    const e = engine(suite.stack.config());
    await schedulePlan(e, plan({ name: "nightly", ...small(), schedule: { cron: "0 3 * * *", tz: "Asia/Shanghai" } }));
    expect(() => plan({ name: "nightly", ...small(), schedule: { cron: "every night please" } })).toThrow(/schedule\.cron: not a cron pattern/); // refused when loaded (cli.test.ts)
    await expect(
      schedulePlan(e, plan({ name: "nightly", ...small(), schedule: { campaign: { t0: "2020-01-01T00:00:00Z", lead: "1m", refreshEvery: "30s", until: "1m" } } })),
    ).rejects.toThrow(/in the past/);
    expect(await listSchedules(e)).toMatchObject([{ plan: "nightly", kind: "cron", cron: "0 3 * * *", tz: "Asia/Shanghai" }]);
    expect(await e.runs.getJobScheduler("plan-nightly")).toBeTruthy();
    expect(await unschedulePlan(e, "nightly")).toBe(true);
  });

  /** The instant a delayed run job is due. */
  const dueAt = (j: { timestamp: number; opts: { delay?: number } }): number => j.timestamp + (j.opts.delay ?? 0);

  it("registers a cron plan idempotently at its next instant in its zone, runs it once when that instant comes, queues the next, and stops when unscheduled", async () => {
    const e = engine(suite.stack.config());
    const p = plan({ name: "nightly-sh", ...small(), schedule: { cron: "0 3 * * *", tz: "Asia/Shanghai" } });
    const now = Date.now();
    const entry = await schedulePlan(e, p, now);
    await schedulePlan(e, p); // a second scheduler instance registering the same plan
    expect(await e.runs.getJobSchedulersCount()).toBe(1);
    // 03:00 in Shanghai (UTC+8, no DST) is 19:00 UTC.
    const next = entry.next!;
    expect(new Date(next).toISOString()).toMatch(/T19:00:00\.000Z$/);
    expect(next).toBeGreaterThan(now);
    expect(next).toBeLessThanOrEqual(now + 86_400_000);
    const delayed = await e.runs.getDelayed();
    expect(delayed.map((j) => j.id)).toEqual([`repeat:plan-nightly-sh:${next}`]);
    expect(Math.abs(dueAt(delayed[0]!) - next)).toBeLessThanOrEqual(5);

    // Drive time rather than wait for it: the run due at `next` becomes due now.
    await delayed[0]!.promote();
    const runId = `nightly-sh-${stamp(next)}`;
    await until(() => e.store.meta(runId), (m) => m !== null);
    const r = await watchRun(e, runId, { bars: false, pollMs: 100 });
    expect(r).toMatchObject({ status: "done", trigger: "cron", warmed: 20, failed: 0 });
    const following = await until(() => e.runs.getDelayed(), (jobs) => jobs.length === 1 && jobs[0]!.id !== delayed[0]!.id);
    expect(following[0]!.id).toBe(`repeat:plan-nightly-sh:${next + 86_400_000}`);
    expect(await e.store.list()).toEqual([runId]);

    expect(await unschedulePlan(e, p.name)).toBe(true);
    expect(await e.runs.getDelayed()).toEqual([]);
    expect(await listSchedules(e)).toEqual([]);
  });

  it("queues a campaign's runs at T0 − lead, then every refreshEvery until T0 + until, and runs each when its time comes", async () => {
    const e = engine(suite.stack.config());
    const t0 = Date.parse("2030-11-11T00:00:00+08:00");
    const p = plan({ name: "flash", ...small(), ttl: 3600, schedule: { campaign: { t0: "2030-11-11T00:00:00+08:00", lead: "1h", refreshEvery: "30m", until: "30m" } } });
    const entry = await schedulePlan(e, p);
    await schedulePlan(e, p); // idempotent
    const fires = [t0 - 3_600_000, t0 - 1_800_000, t0, t0 + 1_800_000];
    expect(entry.fireTimes).toEqual(fires);
    expect(entry.next).toBe(fires[0]);
    const delayed = (await e.runs.getDelayed()).sort((a, b) => dueAt(a) - dueAt(b));
    expect(delayed.map(dueAt)).toEqual(fires);

    // Drive time: T0 − lead, then the first refresh.
    for (const [i, job] of delayed.slice(0, 2).entries()) {
      await job.promote();
      const runId = `flash-${stamp(fires[i]!)}`;
      await until(() => e.store.meta(runId), (m) => m !== null);
      const r = await watchRun(e, runId, { bars: false, pollMs: 100 });
      expect(r, `run ${i}`).toMatchObject({ status: "done", trigger: "campaign", warmed: 20, failed: 0 });
    }
    expect((await e.runs.getDelayed()).map(dueAt).sort()).toEqual(fires.slice(2));
    expect(await unschedulePlan(e, p.name)).toBe(true);
    expect(await e.runs.getDelayed()).toEqual([]);
  });
});

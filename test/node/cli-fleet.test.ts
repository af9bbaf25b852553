/**
 * The `prewarm` commands that look at a run or the fleet, against the real
 * stack (two self-hosted edge nodes, the scheduler's Redis): `prewarm status`
 * exits as `prewarm run` does and `--watch` waits for the end; `prewarm nodes
 * list` and `GET /v1/nodes` ask each node without a heartbeat whether it
 * answers; a node shows and announces the package's version.
 */
import { createServer, type Socket } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { SchedulerConfig } from "../../prewarm-scheduler/config/config";
import type { ListedNode } from "../../prewarm-scheduler/fleet/node-rules";
import { opsApp, serveOps } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { parsePlan, type Plan } from "../../prewarm-scheduler/plans/plan";
import { watchRun } from "../../prewarm-scheduler/cli/progress";
import type { RunReport } from "../../prewarm-scheduler/runs/run-store";
import { startEdgeNode } from "../../scripts/edge-node";
import { freePort } from "../../scripts/redis-server";
import { prewarm, ROOT, startPrewarm } from "./prewarm-cli";
import { TOKEN, until, useStack } from "./scheduler/stack";

const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const suite = useStack(200);
const { engine } = suite;
const dir = mkdtempSync(path.join(tmpdir(), "prewarm-cli-fleet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The config as a file for the CLI. */
function configFile(cfg: SchedulerConfig): string {
  const file = path.join(dir, `${cfg.prefix}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
}

function plan(overrides: Record<string, unknown> = {}): Plan {
  return parsePlan({ name: "cli-plan", skus: { list: suite.stack.skus.slice(0, 50) }, ttl: 120, ...overrides });
}

describe("prewarm status", () => {
  it("exits as prewarm run does: 0 done, 1 failed; 5 while the run is still running", async () => {
    const dead = await suite.stack.deadNode();
    const cfg = suite.stack.config({ retry: { attempts: 1, backoffMs: 10 } });
    cfg.nodes.push(dead);
    const file = configFile(cfg);
    const e = engine(cfg);
    const done = await watchRun(e, await e.startRun(plan({ targets: { nodes: ["edge-east", "edge-north"] } })), { bars: false, pollMs: 50 });
    const failed = await watchRun(e, await e.startRun(plan({ name: "to-dead", targets: { nodes: [dead.name] } })), { bars: false, pollMs: 50 });
    expect([done.status, failed.status]).toEqual(["done", "failed"]);
    const idle = engine(cfg, false);
    await idle.batches.pause(); // nobody sends its batches: it stays running
    const running = await idle.startRun(plan({ name: "running" }));

    const shown = await Promise.all([done.runId, failed.runId, running].map((id) => prewarm(["status", id, "-c", file, "--json"])));
    expect(shown.map((r) => r.code)).toEqual([0, 1, 5]);
    expect(shown.map((r) => (JSON.parse(r.out) as RunReport).status)).toEqual(["done", "failed", "running"]);
    const text = await prewarm(["status", failed.runId, "-c", file]);
    expect(text.code).toBe(1);
    expect(text.out).toContain(`run ${failed.runId} (plan to-dead, cli): failed`);
    expect(text.out).toMatch(new RegExp(`${dead.name}: node_unreachable 50`));
    await idle.batches.resume();
  }, 60_000);

  it("--watch refreshes until the run ends, then exits with its code (0 done, 1 failed)", async () => {
    const dead = await suite.stack.deadNode();
    const cfg = suite.stack.config({ retry: { attempts: 1, backoffMs: 10 } });
    cfg.nodes.push(dead);
    const file = configFile(cfg);
    const control = engine(cfg, false);
    await control.batches.pause();
    const ok = await control.startRun(plan({ targets: { nodes: ["edge-east", "edge-north"] } }));
    const bad = await control.startRun(plan({ name: "to-dead", targets: { nodes: [dead.name] } }));
    const watchers = [ok, bad].map((id) => startPrewarm(["status", id, "--watch", "-c", file, "--json"]));
    try {
      await new Promise((r) => setTimeout(r, 3000)); // started and watching a run that does not move
      expect(watchers.map((w) => w.child.exitCode)).toEqual([null, null]);
      await control.batches.resume();
      engine(cfg); // workers: the runs go on and end
      const [a, b] = await Promise.all(watchers.map((w) => w.done));
      const reports = [JSON.parse(a!.out) as RunReport, JSON.parse(b!.out) as RunReport];
      expect([a!.code, b!.code]).toEqual([0, 1]);
      expect(reports.map((r) => [r.runId, r.status, r.warmed, r.failed])).toEqual([
        [ok, "done", 100, 0],
        [bad, "failed", 0, 50],
      ]);
      // Seen within the watch's interval of the end (plus the process's exit).
      const ended = Date.now();
      expect(ended - Math.max(...reports.map((r) => r.finishedAt!))).toBeLessThan(3000);
    } finally {
      for (const w of watchers) w.child.kill("SIGKILL");
    }
  }, 60_000);
});

describe("prewarm run --detach", () => {
  it("queues the run and says so when no worker works the scheduler's queues; a worker started later runs it", async () => {
    const cfg = suite.stack.config();
    const file = configFile(cfg);
    const planFile = path.join(dir, "detached.yaml");
    writeFileSync(planFile, stringify({ name: "detached", skus: { list: suite.stack.skus.slice(0, 20) }, ttl: 120 }));
    const alone = await prewarm(["run", planFile, "--detach", "-c", file, "--json"]);
    expect(alone.code).toBe(0);
    const queued = JSON.parse(alone.out) as { runId: string; workers: number };
    expect(queued.workers).toBe(0);
    expect(alone.err).toContain(`prewarm run: no prewarm worker or serve process works this scheduler's queues (${cfg.redis}, prefix ${cfg.prefix}): run ${queued.runId} is queued until one starts`);

    const e = engine(cfg); // a worker
    await e.waitUntilReady();
    const r = await watchRun(e, queued.runId, { bars: false, pollMs: 50 });
    expect([r.status, r.warmed]).toEqual(["done", 40]);
    const worked = await prewarm(["run", planFile, "--detach", "-c", file, "--json"]);
    expect((JSON.parse(worked.out) as { workers: number }).workers).toBeGreaterThanOrEqual(1);
    expect(worked.err).not.toContain("no prewarm worker");
  }, 60_000);
});

describe("prewarm nodes list, GET /v1/nodes", () => {
  it("ask each node without a heartbeat for its /healthz (in parallel, bounded): live, degraded, or unreachable with why", async () => {
    const port = await freePort();
    // A node whose edge Redis is down: it answers /healthz 503 degraded.
    const degraded = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, PREWARM_TOKEN: TOKEN }, processes: 1 });
    // A host that takes the connection and never answers.
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(port, "127.0.0.1", r));
    const dead = await suite.stack.deadNode();
    try {
      const addedPort = await freePort();
      const cfg = suite.stack.config({ nodeUrlAllow: [`http://127.0.0.1:${addedPort}`] });
      cfg.nodes.push({ ...dead, name: "edge-dead" }, { name: "edge-degraded", url: degraded.url, region: "cn-east" });
      // Three names for the silent host: asked one after another, they would take three probe timeouts.
      for (const name of ["edge-silent", "edge-silent-2", "edge-silent-3"]) cfg.nodes.push({ name, url: `http://127.0.0.1:${port}`, region: "cn-east" });
      const e = engine(cfg, false);
      await e.registry.add({ name: "edge-added-dead", url: `http://127.0.0.1:${addedPort}`, region: "cn-north" });
      const expected = [
        ["edge-east", "config", "live", undefined],
        ["edge-north", "config", "live", undefined],
        ["edge-dead", "config", "unreachable", "node_unreachable"],
        ["edge-degraded", "config", "degraded", "http_503"],
        ["edge-silent", "config", "unreachable", "timeout"],
        ["edge-silent-2", "config", "unreachable", "timeout"],
        ["edge-silent-3", "config", "unreachable", "timeout"],
        ["edge-added-dead", "added", "unreachable", "node_unreachable"],
      ];
      const started = Date.now();
      const listed = (await (await opsApp(e).request("/v1/nodes")).json()) as { nodes: ListedNode[] };
      expect(Date.now() - started).toBeLessThan(5000); // about one probe timeout (2 s), not one per silent node (6 s)
      expect(listed.nodes.map((n) => [n.name, n.source, n.state, n.error])).toEqual(expected);
      expect(listed.nodes[0]!.rules).toMatch(/^[0-9a-f]{12}$/);
      expect(listed.nodes[3]!.rules).toMatch(/^[0-9a-f]{12}$/); // degraded, but it says its rules

      const cli = await prewarm(["nodes", "list", "-c", configFile(cfg), "--json"]);
      expect(cli.code).toBe(0);
      expect((JSON.parse(cli.out) as { nodes: ListedNode[] }).nodes.map((n) => [n.name, n.source, n.state, n.error])).toEqual(expected);
      const text = await prewarm(["nodes", "list", "-c", configFile(cfg)]);
      expect(text.out).toMatch(/^edge-silent +cn-east +config +unreachable \(timeout\) +rules unknown /m);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
      await degraded.stop();
    }
  }, 60_000);
});

describe("a node's version", () => {
  it("is the package's: shown by /healthz and announced to the registry", async () => {
    for (const edge of suite.stack.edges) expect(((await (await fetch(`${edge.node.url}/healthz`)).json()) as { version: string }).version).toBe(PACKAGE_VERSION);
    const port = await freePort();
    const e = engine(suite.stack.config({ nodeUrlAllow: [`http://127.0.0.1:${port}`], registryToken: "reg-secret" }), false);
    const ops = await serveOps(e, 0, "127.0.0.1");
    const node = await startEdgeNode({
      vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: suite.stack.edges[0]!.redis.url, PREWARM_TOKEN: TOKEN, NODE_ANNOUNCE_URL: `http://127.0.0.1:${(ops.address() as { port: number }).port}`, NODE_ANNOUNCE_TOKEN: "reg-secret", NODE_NAME: "edge-self", NODE_PUBLIC_URL: `http://127.0.0.1:${port}` },
      processes: 1,
      port,
    });
    try {
      const entry = await until(async () => (await e.registry.list()).find((n) => n.name === "edge-self"), (x) => x !== undefined, 10_000);
      expect(entry!.version).toBe(PACKAGE_VERSION);
      expect(((await (await fetch(`${node.url}/healthz`)).json()) as { version: string }).version).toBe(PACKAGE_VERSION);
    } finally {
      await node.stop();
      ops.close();
    }
  }, 60_000);
});

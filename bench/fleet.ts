/**
 * `npm run bench:fleet`: the scheduler over a fleet of 500 edge nodes on
 * loopback: 498 answered by a stand-in (bench/fleet/stand-in.ts: one process
 * that answers SPEC §5's prewarm for every node after 20 ms, warming nothing;
 * a stand-in, not an edge node) and 2 real edge nodes (`npm run node`, each
 * with its Redis). One, then two scheduler processes (`prewarm worker`).
 *
 * Plans: 1,000 SKUs on all 500 nodes (500 batches), and 10,000 SKUs on 100
 * nodes (1,000 batches), 3 runs each per process count (median and spread).
 * Reported per run: wall time (run created → last batch recorded), batches/s,
 * the worker processes' RSS, their Redis connections and the scheduler
 * Redis's commands per batch. Then 5 % of the nodes dead (nothing listening):
 * the run must end by its deadline with every other node done.
 *
 * Writes bench/results/fleet.json with `goals: [{name, measured, goal, met}]`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { parseConfig, type SchedulerConfig } from "../prewarm-scheduler/config/config";
import { Engine } from "../prewarm-scheduler/runs/engine";
import { parsePlan } from "../prewarm-scheduler/plans/plan";
import { watchRun } from "../prewarm-scheduler/cli/progress";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode, type EdgeNode } from "../scripts/edge-node";
import { freePort, startRedis, type RedisProcess } from "../scripts/redis-server";
import { median, spread } from "./stats";

const ROOT = path.resolve(import.meta.dirname, "..");
const NODES = 500;
const LATENCY_MS = 20;
const TOKEN = "fleet-bench";
const REPS = 3;
const SKUS = 10_000;

interface RunFigures {
  plan: string;
  processes: number;
  batches: number;
  wallMs: number;
  batchesPerSecond: number;
  rssMiB: number;
  connectionsPerProcess: number;
  commandsPerBatch: number;
  /** CPU used during the run, as a share of one core: the scheduler processes together, the stand-in, the scheduler's Redis. */
  cpu: { schedulers: number; standIn: number; redis: number };
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

function waitForLine(child: ChildProcess, stream: "stdout" | "stderr", text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    child[stream]!.on("data", (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`exited ${code} before "${text}":\n${seen}`)));
  });
}

async function standIn(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "bench/fleet/stand-in.ts"), String(port), String(LATENCY_MS), TOKEN], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  await waitForLine(child, "stdout", "stand-in listening");
  return child;
}

async function workers(configFile: string, n: number): Promise<ChildProcess[]> {
  const procs = Array.from({ length: n }, () => spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), "worker", "--config", configFile], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] }));
  await Promise.all(procs.map((p) => waitForLine(p, "stderr", "prewarm worker:")));
  return procs;
}

async function stop(procs: ChildProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once("exit", () => r()), p.kill("SIGTERM"))))));
}

async function clientCount(redis: Redis): Promise<number> {
  return ((await redis.client("LIST")) as string).trim().split("\n").length;
}

async function commandsProcessed(redis: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info("stats"))?.[1] ?? NaN);
}

async function measure(control: Engine, admin: Redis, procs: ChildProcess[], planName: string, skus: string[], targets: string[] | "all", baseline: number, others: { standIn: number; redis: number }): Promise<RunFigures> {
  const cpu0 = { schedulers: procs.reduce((s, p) => s + cpuSeconds(p.pid!), 0), standIn: cpuSeconds(others.standIn), redis: cpuSeconds(others.redis) };
  const plan = parsePlan({ name: planName, skus: { list: skus }, ...(targets === "all" ? {} : { targets: { nodes: targets } }), ttl: 120, deadline: "2m" });
  const cmds0 = await commandsProcessed(admin);
  let rss = 0;
  let conns = 0;
  const sampler = setInterval(() => {
    rss = Math.max(rss, ...procs.map((p) => rssMiB(p.pid!)));
    void clientCount(admin).then((c) => (conns = Math.max(conns, c)));
  }, 100);
  const r = await watchRun(control, await control.startRun(plan, "bench"), { bars: false, pollMs: 50 });
  clearInterval(sampler);
  const cmds1 = await commandsProcessed(admin);
  const batches = r.nodes.reduce((s, n) => s + n.batches, 0);
  const wallMs = r.finishedAt! - r.createdAt;
  const share = (now: number, then: number): number => (now - then) / (wallMs / 1000);
  const cpu = { schedulers: share(procs.reduce((s, p) => s + cpuSeconds(p.pid!), 0), cpu0.schedulers), standIn: share(cpuSeconds(others.standIn), cpu0.standIn), redis: share(cpuSeconds(others.redis), cpu0.redis) };
  if (r.status !== "done") throw new Error(`${planName}: ${r.status} ${r.reason ?? ""} ${JSON.stringify(r.nodes.filter((n) => n.failed > 0).slice(0, 3).map((n) => [n.name, n.failedByCode]))}`);
  return { plan: planName, processes: procs.length, batches, wallMs, batchesPerSecond: (batches / wallMs) * 1000, rssMiB: rss, connectionsPerProcess: (conns - baseline) / procs.length, commandsPerBatch: (cmds1 - cmds0) / batches, cpu };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "fleet-bench-"));
  const schedulerRedis = await startRedis();
  const edgeRedis: RedisProcess[] = [];
  const edges: EdgeNode[] = [];
  const standPort = await freePort();
  const stand = await standIn(standPort);
  const catalog = demoCatalog(SKUS, Date.now(), Date.now() + 3_600_000);
  const skus = catalog.map((r) => r.sku);
  try {
    for (const region of ["cn-east", "cn-north"]) {
      const r = await startRedis();
      const c = new Redis(r.url);
      await seedCatalog(c, catalog);
      c.disconnect();
      edgeRedis.push(r);
      edges.push(await startEdgeNode({ vars: { EDGE_REGION: region, EDGE_REDIS_URL: r.url, PREWARM_TOKEN: TOKEN, NODE_WATCH_CHANGES: "0" }, processes: 1 }));
    }
    const fleet = (dead: number): SchedulerConfig["nodes"] => [
      ...edges.map((e, i) => ({ name: `edge-${i + 1}`, url: e.url, region: i === 0 ? "cn-east" : "cn-north" })),
      ...Array.from({ length: NODES - edges.length }, (_, i) => ({ name: `sim-${i}`, url: i < dead ? `http://127.0.0.1:${standPort + 1000 + i}` : `http://127.0.0.1:${standPort}/n/${i}`, region: "cn-east" })),
    ];
    const config = (nodes: SchedulerConfig["nodes"], prefix: string): { cfg: SchedulerConfig; file: string } => {
      const cfg = parseConfig({ redis: schedulerRedis.url, prefix, token: TOKEN, nodes, batchSize: 1000, concurrency: 64, requestTimeoutMs: 10_000, retry: { attempts: 3, backoffMs: 200 } });
      const file = path.join(dir, `${prefix}.yaml`);
      writeFileSync(file, stringify(cfg));
      return { cfg, file };
    };
    const admin = new Redis(schedulerRedis.url);
    const runs: RunFigures[] = [];
    const small = fleet(0).slice(0, 100).map((n) => n.name);
    for (const n of [1, 2]) {
      const { cfg, file } = config(fleet(0), `fleet-${n}`);
      const control = new Engine(cfg);
      await control.connected();
      const baseline = await clientCount(admin);
      const procs = await workers(file, n);
      try {
        for (let rep = 0; rep < REPS; rep++) {
          for (const [name, list, targets] of [["1,000 SKUs x 500 nodes", skus.slice(0, 1000), "all"], ["10,000 SKUs x 100 nodes", skus, small]] as const) {
            const f = await measure(control, admin, procs, name.replace(/[^a-z0-9]+/gi, "-").toLowerCase(), [...list], targets === "all" ? "all" : [...targets], baseline, { standIn: stand.pid!, redis: schedulerRedis.process.pid! });
            runs.push({ ...f, plan: name });
            console.log(`${n} process(es), ${name}: ${f.batches} batches in ${f.wallMs} ms = ${Math.round(f.batchesPerSecond)} batches/s; RSS ${f.rssMiB.toFixed(0)} MiB; ${f.connectionsPerProcess.toFixed(1)} Redis connections per process; ${f.commandsPerBatch.toFixed(1)} Redis commands per batch (counted inside scripts too); CPU (cores): schedulers ${f.cpu.schedulers.toFixed(2)}, stand-in ${f.cpu.standIn.toFixed(2)}, Redis ${f.cpu.redis.toFixed(2)}`);
          }
        }
      } finally {
        await stop(procs);
        await control.close();
      }
    }
    // 5 % of the nodes dead.
    const dead = Math.round(NODES * 0.05);
    const { cfg, file } = config(fleet(dead), "fleet-dead");
    const control = new Engine(cfg);
    const procs = await workers(file, 1);
    let deadReport;
    try {
      const plan = parsePlan({ name: "dead", skus: { list: skus.slice(0, 1000) }, ttl: 120, deadline: "60s" });
      deadReport = await watchRun(control, await control.startRun(plan, "bench"), { bars: false, pollMs: 100 });
    } finally {
      await stop(procs);
      await control.close();
    }
    admin.disconnect();
    const deadNodes = deadReport.nodes.filter((n) => n.name.startsWith("sim-") && Number(n.name.slice(4)) < dead);
    const alive = deadReport.nodes.filter((n) => !deadNodes.includes(n));
    console.log(`5 % dead: ${deadReport.status} in ${deadReport.finishedAt! - deadReport.createdAt} ms (deadline 60 s); alive nodes done ${alive.filter((n) => n.warmed === n.skus && n.settled === n.batches).length}/${alive.length}; dead nodes' codes ${JSON.stringify([...new Set(deadNodes.flatMap((n) => Object.keys(n.failedByCode)))])}`);

    const one = runs.filter((r) => r.processes === 1);
    const two = runs.filter((r) => r.processes === 2);
    const per = (rs: RunFigures[], plan: string): number[] => rs.filter((r) => r.plan === plan).map((r) => r.batchesPerSecond);
    const p500 = "1,000 SKUs x 500 nodes";
    const p100 = "10,000 SKUs x 100 nodes";
    const goals = [
      { name: "batches/s, one scheduler process, nodes answering in 20 ms (1,000 SKUs x 500 nodes; median of 3)", measured: `${Math.round(median(per(one, p500)))} (${spread(per(one, p500))})`, goal: "≥ 200", met: median(per(one, p500)) >= 200 },
      { name: "batches/s, one scheduler process (10,000 SKUs x 100 nodes; median of 3)", measured: `${Math.round(median(per(one, p100)))} (${spread(per(one, p100))})`, goal: "≥ 200", met: median(per(one, p100)) >= 200 },
      ...[p500, p100].map((p) => ({ name: `two processes against one (${p}; medians)`, measured: `${(median(per(two, p)) / median(per(one, p))).toFixed(2)}x (${Math.round(median(per(two, p)))} vs ${Math.round(median(per(one, p)))} batches/s)`, goal: "≥ 1.7x", met: median(per(two, p)) >= 1.7 * median(per(one, p)) })),
      { name: "Redis connections per scheduler process at 500 nodes (max over runs)", measured: `${Math.max(...runs.map((r) => r.connectionsPerProcess)).toFixed(1)}`, goal: "≤ 20", met: Math.max(...runs.map((r) => r.connectionsPerProcess)) <= 20 },
      {
        name: "5 % of nodes dead: the run ends by its deadline, every other node done, the dead ones node_unreachable",
        measured: `${deadReport.status} after ${((deadReport.finishedAt! - deadReport.createdAt) / 1000).toFixed(1)} s; ${alive.filter((n) => n.warmed === n.skus).length}/${alive.length} alive nodes done; dead: ${JSON.stringify([...new Set(deadNodes.flatMap((n) => Object.keys(n.failedByCode)))])}`,
        goal: "by 60 s; all; node_unreachable or node_absent",
        met: deadReport.finishedAt! <= deadReport.deadline + 2000 && alive.every((n) => n.warmed === n.skus) && deadNodes.every((n) => Object.keys(n.failedByCode).every((c) => c === "node_unreachable" || c === "node_absent")),
      },
      { name: "worker RSS (max over runs)", measured: `${Math.max(...runs.map((r) => r.rssMiB)).toFixed(0)} MiB`, goal: "reported", met: true },
      { name: "scheduler Redis commands per batch, those inside Lua scripts (BullMQ's and the run store's) included (median over runs)", measured: median(runs.map((r) => r.commandsPerBatch)).toFixed(1), goal: "reported", met: true },
      {
        name: "CPU during the runs, in cores of this 2-core machine (medians): schedulers / stand-in / scheduler Redis",
        measured: [1, 2].map((n) => `${n} process(es): ${["schedulers", "standIn", "redis"].map((k) => median(runs.filter((r) => r.processes === n).map((r) => r.cpu[k as keyof RunFigures["cpu"]])).toFixed(2)).join(" / ")}`).join("; "),
        goal: "reported",
        met: true,
      },
    ];
    for (const g of goals) console.log(`${g.goal === "reported" ? "      " : g.met ? "MET   " : "MISSED"} ${g.name}: ${g.measured} (goal ${g.goal})`);
    const out = path.join(ROOT, "bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "fleet.json"), `${JSON.stringify({ at: new Date().toISOString(), nodes: NODES, standInLatencyMs: LATENCY_MS, runs, goals }, null, 2)}\n`);
    console.log("written: bench/results/fleet.json");
  } finally {
    await stop([stand]);
    for (const e of edges) await e.stop();
    for (const r of [...edgeRedis, schedulerRedis]) await r.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

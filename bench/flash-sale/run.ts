/**
 * `npm run loadtest`: the flash-sale load test on the node as deployed
 * (`npm run node`: 2 workerd processes on one port, aggregates in its Redis),
 * on loopback only and bounded in time (about 40 s a run).
 *
 * A catalogue of 20,000 SKUs with Zipf popularity; 5 very hot SKUs whose
 * flash price starts at T0; the edge Redis lacks 5 % (the region has them).
 * Open-loop traffic at fixed rates, drawn once from a seeded generator, so
 * every run gets the same requests at the same offsets from T0: a steady
 * 200 req/s from T0 − 8 s to T0 + 4 s, plus a burst of 800 req/s from T0 − 1 s
 * to T0 + 4 s. Three kinds of run, interleaved, 3 of each (`-- --reps N`):
 *
 *  - cold: a fresh node, nothing warmed;
 *  - prewarmed: the scheduler warms every SKU the traffic will read (the
 *    region-only ones included: `prewarm run` of a plan listing them), then
 *    `prewarm verify` checks every key before T0;
 *  - changes: prewarmed, and during the burst the price and stock of the hot
 *    SKUs change three times in the edge Redis (the node's change watch
 *    re-warms them).
 *
 * Each run starts from empty Redis servers and a fresh node. Writes
 * bench/results/flash-sale.{md,json,svg}, with `goals` in the JSON.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { seedCatalog } from "../../records/demo-catalog";
import { priceKey, stockKey } from "../../records/keys";
import { startRegional, type Regional } from "../../regional/server";
import { startEdgeNode, type EdgeNode } from "../../scripts/edge-node";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";
import { flashCatalogue, type FlashCatalogue } from "./catalogue";
import { chart, goals, markdown, summarize, type Change, type Mode, type RunSummary } from "./report";
import { replay, schedule, type TrafficShape } from "./traffic";

const ROOT = path.resolve(import.meta.dirname, "../..");
const N = 20_000;
const HOT = 5;
const SHAPE: TrafficShape = { steady: { rate: 200, from: -8000, to: 4000 }, burst: { rate: 800, from: -1000, to: 4000 }, seed: 20261111 };
/** When the change run changes the hot SKUs (ms from T0). */
const CHANGES_AT = [500, 1500, 2500];
/** Time allowed for the setup of a run before its traffic starts. */
const SETUP_MS = 40_000;

const { values: args } = parseArgs({ options: { reps: { type: "string", default: "3" } } });
const reps = Number(args.reps);

interface Ctx {
  edgeRedis: RedisProcess;
  regional: Regional;
  regionalRedis: RedisProcess;
  schedulerRedis: RedisProcess;
  token: string;
  dir: string;
}

function seed(client: Redis, cat: FlashCatalogue, skus: readonly string[]): Promise<void> {
  return seedCatalog(client, skus.map((sku) => ({ sku, ...cat.records(sku) })));
}

async function regionalRequests(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^regional_requests_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

async function recordReads(node: EdgeNode): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(/^edge_redis_record_reads_total (\d+)$/m.exec(text)?.[1] ?? NaN);
}

/** Runs the scheduler's CLI to its exit; its stdout. */
function prewarmCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => (code === 0 || code === 1 ? resolve(out) : reject(new Error(`prewarm ${args[0]} exited ${code}: ${out.slice(0, 500)}`))));
  });
}

/** Warms every SKU the traffic reads with the scheduler, then verifies them; the ready share. */
async function prewarmAndVerify(ctx: Ctx, node: EdgeNode, skus: readonly string[], label: string): Promise<number> {
  const config = path.join(ctx.dir, "prewarm.config.yaml");
  const plan = path.join(ctx.dir, "flash-plan.yaml");
  writeFileSync(path.join(ctx.dir, "skus.txt"), `${skus.join("\n")}\n`);
  writeFileSync(config, stringify({ redis: ctx.schedulerRedis.url, prefix: `loadtest-${randomBytes(3).toString("hex")}`, token: ctx.token, nodes: [{ name: "edge-1", url: node.url, region: "cn-east" }] }));
  writeFileSync(plan, stringify({ name: "flash-sale", skus: { file: "skus.txt" }, ttl: 300, verify: { margin: "60s", readiness: 1 } }));
  const run = JSON.parse(await prewarmCli(["run", plan, "--config", config, "--json"])) as { warmed: number; failed: number; fromRegional: number; skusPerSecond: number };
  const verify = JSON.parse(await prewarmCli(["verify", plan, "--config", config, "--json"])) as { readyPct: number; nodes: { stragglers: Record<string, number> }[] };
  console.log(`${label}: scheduler warmed ${run.warmed} SKUs (${run.failed} failed, ${Math.round(run.skusPerSecond)} SKUs/s); verify: ${verify.readyPct.toFixed(2)} % ready ${JSON.stringify(verify.nodes[0]?.stragglers ?? {})}`);
  return verify.readyPct;
}

async function oneRun(mode: Mode, rep: number, ctx: Ctx): Promise<RunSummary> {
  const label = `${mode} #${rep}`;
  const t0 = Date.now() + SETUP_MS;
  const cat = flashCatalogue(N, HOT, t0);
  const planned = schedule(cat, SHAPE);
  const edge = new Redis(ctx.edgeRedis.url);
  const regionalClient = new Redis(ctx.regionalRedis.url);
  await Promise.all([edge.flushall(), regionalClient.flushall()]);
  await seed(edge, cat, cat.skus.slice(0, N - N / 20)); // the last 5 % only the region has
  await seed(regionalClient, cat, cat.skus);
  regionalClient.disconnect();
  const node = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: ctx.edgeRedis.url, REGIONAL_URL: ctx.regional.url, PREWARM_TOKEN: ctx.token } });
  const timers: NodeJS.Timeout[] = [];
  try {
    const readiness = mode === "cold" ? null : await prewarmAndVerify(ctx, node, [...new Set(planned.map((p) => p.sku))], label);
    if (Date.now() + 8000 > t0 + SHAPE.steady.from) throw new Error(`${label}: setup took longer than ${SETUP_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, t0 + SHAPE.steady.from - 3000 - Date.now()));
    const reads0 = await recordReads(node); // node totals settle within ~1 s; the traffic starts 3 s later
    const regional0 = await regionalRequests(ctx.regional.url);
    const inBurst: number[] = [];
    for (const at of [SHAPE.burst.from, SHAPE.burst.to]) timers.push(setTimeout(() => void regionalRequests(ctx.regional.url).then((n) => inBurst.push(n)), t0 + at - Date.now()));
    const changes: Change[] = [];
    if (mode === "changes") {
      CHANGES_AT.forEach((at, k) =>
        timers.push(
          setTimeout(() => {
            const p = edge.pipeline();
            for (const sku of cat.hot) {
              const r = cat.records(sku, k + 1);
              p.set(stockKey("sku:", sku), Buffer.from(r.stock)).set(priceKey("sku:", sku), Buffer.from(r.price));
            }
            void p.exec().then(() => {
              const acked = Date.now();
              for (const sku of cat.hot) changes.push({ sku, version: k + 1, at: acked });
            });
          }, t0 + at - Date.now()),
        ),
      );
    }
    const samples = await replay(node.url, planned, t0);
    await new Promise((r) => setTimeout(r, 2500)); // the processes' last counts reach the node's totals
    const reads1 = await recordReads(node);
    const regional1 = await regionalRequests(ctx.regional.url);
    const summary = summarize(label, mode, rep, samples, cat, t0, SHAPE.burst, {
      regionalRequests: regional1 - regional0,
      regionalRequestsInBurst: (inBurst[1] ?? regional1) - (inBurst[0] ?? regional0),
      recordReads: reads1 - reads0,
      readinessPct: readiness,
      changes,
    });
    console.log(
      `${label}: ${summary.requests} requests, ${summary.errors} errors, hit ${(summary.all.hitRatio * 100).toFixed(2)} % (burst ${(summary.burst.hitRatio * 100).toFixed(2)} %), p99 ${summary.all.p99} ms (burst ${summary.burst.p99} ms), regional ${summary.regionalRequests} (burst ${summary.regionalRequestsInBurst}), record reads ${summary.recordReads}, wrong ${summary.wrong}`,
    );
    return summary;
  } finally {
    for (const t of timers) clearTimeout(t);
    edge.disconnect();
    await node.stop();
  }
}

async function main(): Promise<void> {
  const token = randomBytes(8).toString("hex");
  const dir = mkdtempSync(path.join(tmpdir(), "edge-prewarm-loadtest-"));
  const edgeRedis = await startRedis();
  const regionalRedis = await startRedis();
  const schedulerRedis = await startRedis();
  const regional = await startRegional({ redisUrl: regionalRedis.url });
  try {
    const ctx: Ctx = { edgeRedis, regional, regionalRedis, schedulerRedis, token, dir };
    const runs: RunSummary[] = [];
    for (let rep = 1; rep <= reps; rep++) for (const mode of ["cold", "prewarmed", "changes"] as const) runs.push(await oneRun(mode, rep, ctx));
    const planned = schedule(flashCatalogue(N, HOT, 0), SHAPE);
    const meta = {
      node: "one edge node as deployed (npm run node: 2 workerd processes on one port, aggregates in its Redis), its Redis, the reference regional aggregator, all on loopback, on this 2-core machine",
      catalogue: `${N} SKUs, Zipf s=1.1, ${HOT} hot SKUs with a flash price from T0 taking 30 % of requests; the edge Redis lacks 5 % (the region has them)`,
      traffic: `open loop, seed ${SHAPE.seed}: ${SHAPE.steady.rate} req/s from T0 − ${-SHAPE.steady.from / 1000} s to T0 + ${SHAPE.steady.to / 1000} s, plus ${SHAPE.burst.rate} req/s from T0 − ${-SHAPE.burst.from / 1000} s to T0 + ${SHAPE.burst.to / 1000} s: ${planned.length} requests for ${new Set(planned.map((p) => p.sku)).size} distinct SKUs, the same in every run`,
      prewarm: "prewarm run (scheduler CLI) of every SKU the traffic reads, region-only ones included, ttl 300 s; then prewarm verify (only-if-cached reads of every key, valid for at least 60 s more)",
      changes: `change run: at T0 + ${CHANGES_AT.map((t) => t / 1000).join(", ")} s, new price and stock records for the ${HOT} hot SKUs in the edge Redis`,
      runs: `${reps} of each, interleaved (cold, prewarmed, changes), each from empty Redis servers and a fresh node`,
    };
    const gs = goals(runs);
    const out = path.resolve(ROOT, "bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "flash-sale.json"), `${JSON.stringify({ at: new Date().toISOString(), meta, goals: gs, runs }, null, 2)}\n`);
    writeFileSync(path.join(out, "flash-sale.md"), markdown(runs, gs, meta));
    writeFileSync(path.join(out, "flash-sale.svg"), chart(runs));
    console.log(`\n${markdown(runs, gs, meta)}`);
    for (const g of gs) if (g.goal !== "reported") console.log(`${g.met ? "MET   " : "MISSED"} ${g.name}: ${g.measured} (goal ${g.goal})`);
    console.log("written: bench/results/flash-sale.{md,json,svg}");
    if (runs.some((r) => r.wrong > 0)) process.exitCode = 1;
  } finally {
    await regional.close();
    for (const r of [schedulerRedis, regionalRedis, edgeRedis]) await r.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

/**
 * `npm run loadtest`: the flash-sale load test, on loopback only and bounded
 * in time (~1 minute per run). A catalogue of 20,000 SKUs with Zipf
 * popularity and 5 very hot SKUs whose flash price starts at T0; traffic
 * from autocannon ramps from a steady load to a burst at T0. Run twice on a
 * fresh edge node each time: cold (no prewarm), then prewarmed by the
 * scheduler (`prewarm run`, the 2,000 hottest SKUs from a Redis sorted set)
 * before T0. Writes bench/results/flash-sale.{md,json,svg}.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { startRegional, type Regional } from "../../regional/server";
import { startEdgeNode } from "../../scripts/edge-node";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";
import { flashCatalogue, type FlashCatalogue } from "./catalogue";
import { chart, markdown, summarize, type RunSummary } from "./report";
import { flashTraffic } from "./traffic";

const ROOT = path.resolve(import.meta.dirname, "../..");
const N = 20_000;
const HOT = 5;
const PREWARM_TOP = 2_000;
const LEAD_MS = 8_000; // traffic starts this long before T0
const TRAFFIC = { seconds: 14, steady: 10, burst: 40 };

async function seed(url: string, cat: FlashCatalogue, skus: readonly string[]): Promise<void> {
  const c = new Redis(url);
  for (let i = 0; i < skus.length; i += 1000) {
    const p = c.pipeline();
    for (const sku of skus.slice(i, i + 1000)) {
      const r = cat.records(sku);
      p.set(`sku:${sku}:stock`, Buffer.from(r.stock)).set(`sku:${sku}:price`, Buffer.from(r.price));
    }
    await p.exec();
  }
  c.disconnect();
}

async function redisGets(url: string): Promise<number> {
  const c = new Redis(url);
  const info = await c.info("commandstats");
  c.disconnect();
  return Number(/cmdstat_get:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

async function regionalCounters(url: string): Promise<{ requests: number; skus: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return {
    requests: [...text.matchAll(/^regional_requests_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0),
    skus: Number(/^regional_skus_total (\d+)$/m.exec(text)?.[1] ?? 0),
  };
}

function prewarmWithScheduler(dir: string, schedulerRedis: string, edgeRedis: string, node: { url: string }, token: string): Promise<string> {
  const config = path.join(dir, "prewarm.config.yaml");
  const plan = path.join(dir, "flash-plan.yaml");
  writeFileSync(config, stringify({ redis: schedulerRedis, prefix: `loadtest-${randomBytes(3).toString("hex")}`, token, nodes: [{ name: "edge-1", url: node.url, region: "cn-east" }] }));
  writeFileSync(plan, stringify({ name: "flash-sale", skus: { hot: { key: "hot-skus", top: PREWARM_TOP, redis: edgeRedis } }, ttl: 120 }));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "prewarm-scheduler/cli.ts"), "run", plan, "--config", config, "--json"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`prewarm run exited ${code}: ${out.slice(0, 500)}`))));
  });
}

async function oneRun(label: string, prewarm: boolean, ctx: { edgeRedis: RedisProcess; regional: Regional; regionalRedis: RedisProcess; schedulerRedis: RedisProcess; token: string; dir: string }): Promise<RunSummary> {
  const t0 = Date.now() + 30_000; // moved to its final value once the node is up
  const cat = flashCatalogue(N, HOT, t0);
  await seed(ctx.edgeRedis.url, cat, cat.skus.slice(0, N - N / 20)); // the last 5 % only the region has
  await seed(ctx.regionalRedis.url, cat, cat.skus);
  const edge = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: ctx.edgeRedis.url, REGIONAL_URL: ctx.regional.url, PREWARM_TOKEN: ctx.token } });
  try {
    if (prewarm) {
      const report = JSON.parse(await prewarmWithScheduler(ctx.dir, ctx.schedulerRedis.url, ctx.edgeRedis.url, edge, ctx.token)) as { warmed: number; failed: number; skusPerSecond: number };
      console.log(`${label}: scheduler warmed ${report.warmed} SKUs (${report.failed} failed, ${Math.round(report.skusPerSecond)} SKUs/s)`);
    }
    if (Date.now() + LEAD_MS > t0) throw new Error("setup took longer than T0 allows; raise the 30 s margin");
    await new Promise((r) => setTimeout(r, t0 - LEAD_MS - Date.now()));
    const gets0 = await redisGets(ctx.edgeRedis.url);
    const reg0 = await regionalCounters(ctx.regional.url);
    const samples = await flashTraffic(edge.url, cat, t0, TRAFFIC);
    const gets1 = await redisGets(ctx.edgeRedis.url);
    const reg1 = await regionalCounters(ctx.regional.url);
    return summarize(label, samples, cat, t0, { redisGets: gets1 - gets0, regionalRequests: reg1.requests - reg0.requests, regionalSkus: reg1.skus - reg0.skus });
  } finally {
    await edge.stop();
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
    // Popularity, as a hot-SKU sorted set ops would keep: score = expected share of traffic.
    const cat = flashCatalogue(N, HOT, 0);
    const c = new Redis(edgeRedis.url);
    const shares = cat.skus.map((sku, i) => [i < HOT ? 1 : 1 / Math.pow(i + 1, 1.1), sku] as const);
    for (let i = 0; i < shares.length; i += 5000) await c.zadd("hot-skus", ...shares.slice(i, i + 5000).flat());
    c.disconnect();
    const ctx = { edgeRedis, regional, regionalRedis, schedulerRedis, token, dir };
    const runs = [await oneRun("cold (no prewarm)", false, ctx), await oneRun("prewarmed by the scheduler", true, ctx)];
    const meta = {
      catalogue: `${N} SKUs, Zipf s=1.1, ${HOT} hot SKUs with a flash price from T0 taking 30 % of requests; the edge Redis lacks 5 % (the region has them)`,
      traffic: `autocannon, ${TRAFFIC.steady} connections from T0 − ${LEAD_MS / 1000} s for ${TRAFFIC.seconds} s, plus ${TRAFFIC.burst} connections from T0 − 1 s for 5 s; each request a SKU drawn by popularity`,
      prewarm: `prewarm run (scheduler CLI), top ${PREWARM_TOP} of the hot-SKU sorted set, ttl 120 s, before the traffic`,
      node: "one edge node as deployed (npm run node: 2 workerd processes on one port, aggregates in its Redis), its Redis, the reference regional aggregator, all on loopback",
    };
    const out = path.resolve(ROOT, "bench/results");
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, "flash-sale.json"), `${JSON.stringify({ at: new Date().toISOString(), meta, runs }, null, 2)}\n`);
    writeFileSync(path.join(out, "flash-sale.md"), markdown(runs, meta));
    writeFileSync(path.join(out, "flash-sale.svg"), chart(runs));
    console.log(`\n${markdown(runs, meta)}\nwritten: bench/results/flash-sale.{md,json,svg}`);
    if (runs.some((r) => r.burst.wrongPrice > 0)) process.exitCode = 1;
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

/**
 * The main job on embedded defaults: two self-hosted edge nodes in two
 * regions (each started as `npm run node` starts one: the worker bundle in 2
 * workerd processes on one port, with its own private Redis seeded with 90 %
 * of the demo catalogue), the reference regional aggregator with its own
 * Redis holding all of it, and the scheduler's Redis. A prewarm plan runs
 * through the scheduler's CLI (`prewarm run`, progress bar per node,
 * per-node report), then a few warmed keys are read from each node. Everything
 * it starts, it stops. `npm run demo -- --skus 100000` runs a bigger plan.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startRegional, type Regional } from "../regional/server";
import { startEdgeNode, type EdgeNode } from "./edge-node";
import { startRedis, type RedisProcess } from "./redis-server";

const ROOT = path.resolve(import.meta.dirname, "..");
const NODES = [
  { name: "edge-sh-1", region: "cn-east" },
  { name: "edge-bj-1", region: "cn-north" },
] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { skus: { type: "string", default: "2000" }, processes: { type: "string", default: "2" } } });
  const skuCount = Number(values.skus);
  if (!Number.isInteger(skuCount) || skuCount < 1) throw new RangeError(`--skus must be a positive integer, got ${values.skus}`);
  const processes = Number(values.processes);
  if (!Number.isInteger(processes) || processes < 2) throw new RangeError(`--processes must be an integer ≥ 2, got ${values.processes}`);
  const token = randomBytes(16).toString("hex");
  const dir = mkdtempSync(path.join(tmpdir(), "edge-prewarm-demo-"));
  const started: { stop(): Promise<void> }[] = [];
  const edges: { name: string; region: string; node: EdgeNode }[] = [];
  try {
    const catalog = demoCatalog(skuCount, Date.now());
    const edgeShare = catalog.slice(0, Math.floor(catalog.length * 0.9));
    const seed = async (url: string, records: typeof catalog): Promise<void> => {
      const client = new Redis(url);
      await seedCatalog(client, records);
      client.disconnect();
    };

    const regionalRedis = await startRedis();
    started.push(regionalRedis);
    await seed(regionalRedis.url, catalog);
    const regional: Regional = await startRegional({ redisUrl: regionalRedis.url });
    started.push({ stop: () => regional.close() });
    console.log(`regional aggregator  ${regional.url} (${catalog.length} SKUs in its own Redis)`);

    for (const n of NODES) {
      const redis = await startRedis();
      started.push(redis);
      await seed(redis.url, edgeShare);
      const node = await startEdgeNode({ vars: { EDGE_REGION: n.region, EDGE_REDIS_URL: redis.url, REGIONAL_URL: regional.url, PREWARM_TOKEN: token }, processes });
      started.push(node);
      edges.push({ ...n, node });
      console.log(`edge node ${n.name.padEnd(10)} ${node.url} region ${n.region}, ${processes} workerd processes (npm run node), Redis ${redis.url} (${edgeShare.length} SKUs)`);
    }

    const schedulerRedis = await startRedis();
    started.push(schedulerRedis);
    const configFile = path.join(dir, "prewarm.config.yaml");
    const planFile = path.join(dir, "demo-plan.yaml");
    const skuFile = path.join(dir, "skus.txt");
    writeFileSync(configFile, stringify({ redis: schedulerRedis.url, token: "${PREWARM_TOKEN}", nodes: edges.map((e) => ({ name: e.name, url: e.node.url, region: e.region })) }));
    writeFileSync(skuFile, `${catalog.map((r) => r.sku).join("\n")}\n`);
    writeFileSync(planFile, stringify({ name: "demo", skus: { file: "skus.txt" }, targets: "all", ttl: 300, deadline: "10m" }));
    console.log(`scheduler Redis      ${schedulerRedis.url}\n\nprewarm run ${planFile} --config ${configFile}\n`);

    // The plan goes through the scheduler's own CLI, as ops run it.
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), "run", planFile, "--config", configFile], {
        cwd: ROOT,
        env: { ...process.env, PREWARM_TOKEN: token },
        stdio: "inherit",
      });
      child.on("exit", resolve);
    });
    if (code !== 0) process.exitCode = 1;

    for (const e of edges) {
      console.log(`\nreads of warmed keys from ${e.name} (${e.region}):`);
      for (const r of [catalog[0]!, catalog[7]!, catalog[12]!, catalog[catalog.length - 1]!]) {
        const res = await fetch(`${e.node.url}/v1/skus/${r.sku}`);
        if (res.status !== 200) {
          console.log(`  ${res.status} ${r.sku}: ${await res.text()}`);
          process.exitCode = 1;
          continue;
        }
        const agg = (await res.json()) as { source: string; price: { amount: number; promoId: string | null }; stock: { available: number; status: string }; next: { at: number; amount: number } | null };
        console.log(
          `  X-Cache=${res.headers.get("X-Cache")} ${r.sku.padEnd(22)} price=${agg.price.amount} promo=${agg.price.promoId ?? "-"} ` +
            `stock=${agg.stock.available} (${agg.stock.status}) source=${agg.source}${agg.next ? ` next=${agg.next.amount}@${new Date(agg.next.at).toISOString()}` : ""}`,
        );
      }
    }
  } finally {
    for (const s of started.reverse()) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

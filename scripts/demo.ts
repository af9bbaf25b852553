/**
 * The main job on embedded defaults: a private edge Redis seeded with the
 * demo catalogue, the reference regional aggregator with its own Redis
 * holding the whole catalogue (the edge lacks the last 10 %), the edge
 * worker in workerd, a prewarm of the catalogue, and reads of warmed keys.
 * Everything it starts, it stops.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startRegional, type Regional } from "../regional/server";
import { startEdgeNode, type EdgeNode } from "./edge-node";
import { startRedis, type RedisProcess } from "./redis-server";

const SKUS = Number(process.env["DEMO_SKUS"] ?? 2000);
const REGION = "cn-east";
const BATCH = 1000;

async function main(): Promise<void> {
  const token = randomBytes(16).toString("hex");
  let redis: RedisProcess | undefined;
  let regionalRedis: RedisProcess | undefined;
  let regional: Regional | undefined;
  let edge: EdgeNode | undefined;
  try {
    redis = await startRedis();
    regionalRedis = await startRedis();
    const catalog = demoCatalog(SKUS, Date.now());
    const edgeShare = catalog.slice(0, Math.floor(catalog.length * 0.9));
    for (const [url, records] of [[redis.url, edgeShare], [regionalRedis.url, catalog]] as const) {
      const client = new Redis(url);
      await seedCatalog(client, records);
      client.disconnect();
    }
    regional = await startRegional({ redisUrl: regionalRedis.url });
    console.log(`edge Redis      ${redis.url} (${edgeShare.length} SKUs)`);
    console.log(`regional        ${regional.url} (${catalog.length} SKUs, its own Redis ${regionalRedis.url})`);

    edge = await startEdgeNode({ vars: { EDGE_REGION: REGION, EDGE_REDIS_URL: redis.url, REGIONAL_URL: regional.url, PREWARM_TOKEN: token } });
    console.log(`edge worker     ${edge.url} (workerd via wrangler dev)`);

    const skus = catalog.map((r) => r.sku);
    let warmed = 0;
    let fromRegional = 0;
    let failed = 0;
    const started = performance.now();
    for (let i = 0; i < skus.length; i += BATCH) {
      const res = await fetch(`${edge.url}/v1/prewarm`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ skus: skus.slice(i, i + BATCH), ttl: 30, jobId: `demo-${i / BATCH}` }),
      });
      if (res.status !== 200) throw new Error(`prewarm answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { warmed: number; fromRegional: number; failed: unknown[] };
      warmed += body.warmed;
      fromRegional += body.fromRegional;
      failed += body.failed.length;
    }
    const ms = performance.now() - started;
    console.log(`prewarmed       ${warmed} warmed (${fromRegional} from the region), ${failed} failed in ${ms.toFixed(0)} ms (${Math.round((warmed / ms) * 1000)} SKUs/s)`);

    console.log("\nreads of warmed keys:");
    for (const sku of [skus[0]!, skus[7]!, skus[12]!, skus[skus.length - 1]!]) {
      const res = await fetch(`${edge.url}/v1/skus/${sku}?region=${REGION}`);
      if (res.status !== 200) {
        console.log(`  ${res.status} ${sku}: ${await res.text()}`);
        process.exitCode = 1;
        continue;
      }
      const agg = (await res.json()) as { price: { amount: number; promoId: string | null }; stock: { available: number; status: string }; next: { at: number; amount: number } | null };
      console.log(
        `  ${res.status} X-Cache=${res.headers.get("X-Cache")} ${sku.padEnd(22)} price=${agg.price.amount} promo=${agg.price.promoId ?? "-"} ` +
          `stock=${agg.stock.available} (${agg.stock.status})${agg.next ? ` next=${agg.next.amount}@${new Date(agg.next.at).toISOString()}` : ""}`,
      );
    }
    const sample = await fetch(`${edge.url}/v1/skus/${skus[7]}?region=${REGION}`);
    console.log(`\n${skus[7]} as served:\n${JSON.stringify(await sample.json(), null, 2)}`);
    if (failed > 0) process.exitCode = 1;
  } finally {
    await edge?.stop();
    await regional?.close();
    await regionalRedis?.stop();
    await redis?.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

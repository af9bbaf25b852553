/**
 * Prewarm throughput of one edge node (workerd via wrangler dev, real Redis):
 * 1,000-SKU batches end to end over HTTP, against the rate at which Node +
 * ioredis alone reads the same keys in the same pipelines (the floor any
 * prewarm must pay), both measured in this run.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode } from "../scripts/edge-node";
import { startRedis } from "../scripts/redis-server";
import { median } from "./stats";

const BATCH = 1000;

export interface PrewarmBench {
  skusPerSecond: number;
  baselineKeysPerSecond: number;
  /** SKUs/s of prewarm over SKUs/s of the raw pipelined reads (two keys per SKU). */
  ratio: number;
  batches: number;
}

async function baselineSkusPerSecond(url: string, skus: readonly string[], rounds: number): Promise<number> {
  const client = new Redis(url);
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const batch = skus.slice((r * BATCH) % skus.length, ((r * BATCH) % skus.length) + BATCH);
    const t0 = performance.now();
    const p = client.pipeline();
    for (const sku of batch) p.getBuffer(`sku:${sku}:stock`).getBuffer(`sku:${sku}:price`);
    await p.exec();
    samples.push((batch.length / (performance.now() - t0)) * 1000);
  }
  client.disconnect();
  return median(samples);
}

export async function benchPrewarm(totalSkus = 10_000, rounds = 30): Promise<PrewarmBench> {
  const token = randomBytes(8).toString("hex");
  const redis = await startRedis();
  try {
    const catalog = demoCatalog(totalSkus, Date.now());
    const seeder = new Redis(redis.url);
    await seedCatalog(seeder, catalog);
    seeder.disconnect();
    const skus = catalog.map((r) => r.sku);
    const edge = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: token } });
    try {
      const post = async (batch: readonly string[]): Promise<number> => {
        const res = await fetch(`${edge.url}/v1/prewarm`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
          body: JSON.stringify({ skus: batch, ttl: 60 }),
        });
        const body = (await res.json()) as { warmed: number };
        if (res.status !== 200 || body.warmed !== batch.length) throw new Error(`prewarm failed: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
        return body.warmed;
      };
      for (let i = 0; i < 5; i++) await post(skus.slice(i * BATCH, (i + 1) * BATCH)); // warm-up
      const samples: number[] = [];
      const baseline: number[] = [];
      // Interleave the two measurements so that machine noise hits both alike.
      for (let r = 0; r < rounds; r++) {
        const off = (r * BATCH) % skus.length;
        const t0 = performance.now();
        const warmed = await post(skus.slice(off, off + BATCH));
        samples.push((warmed / (performance.now() - t0)) * 1000);
        baseline.push(await baselineSkusPerSecond(redis.url, skus, 1));
      }
      const skusPerSecond = median(samples);
      const baselineSkus = median(baseline);
      return { skusPerSecond, baselineKeysPerSecond: baselineSkus * 2, ratio: skusPerSecond / baselineSkus, batches: rounds };
    } finally {
      await edge.stop();
    }
  } finally {
    await redis.stop();
  }
}

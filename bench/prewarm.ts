/**
 * Prewarm throughput of one edge node: 1,000-SKU batches over HTTP, end to
 * end (the node's Redis read, the Wasm rules, the one pipelined write of the
 * batch to the node's shared store, the answer), against
 * `redis-benchmark`'s pipelined GET rate on the same Redis for keys holding
 * the same record bytes, in the same run. A SKU is two GETs.
 */
import { execFileSync } from "node:child_process";
import { Redis } from "ioredis";
import type { EdgeNode } from "../scripts/edge-node";

const BATCH = 1000;

export interface PrewarmBench {
  skusPerSecond: number;
  batches: number;
  failed: number;
}

/** Warms `rounds` batches, `concurrency` at a time (a scheduler's per-node concurrency); SKUs/s over the whole run. */
export async function prewarmRate(edge: EdgeNode, token: string, skus: readonly string[], rounds: number, concurrency = 1): Promise<PrewarmBench> {
  const post = async (batch: readonly string[]): Promise<{ warmed: number; failed: unknown[] }> => {
    const res = await fetch(`${edge.url}/v1/prewarm`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ skus: batch, ttl: 300 }),
    });
    if (res.status !== 200) throw new Error(`prewarm answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    return (await res.json()) as { warmed: number; failed: unknown[] };
  };
  // warm-up: JIT tiers and the Wasm instance of every process
  await Promise.all(Array.from({ length: concurrency * 2 }, () => post(skus.slice(0, BATCH))));
  let warmed = 0;
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    for (let r = next++; r < rounds; r = next++) {
      const off = (r * BATCH) % skus.length;
      const a = await post(skus.slice(off, off + BATCH));
      warmed += a.warmed;
      failed += a.failed.length;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { skusPerSecond: (warmed / (performance.now() - t0)) * 1000, batches: rounds, failed };
}

/** redis-benchmark's GETs/s, pipelined 1,000 deep, over `keys` keys that hold real record bytes. */
export async function redisBenchmarkGets(redisUrl: string, sample: Uint8Array, keys = 10_000): Promise<number> {
  const { hostname, port } = new URL(redisUrl);
  const client = new Redis(redisUrl);
  // redis-benchmark names keys rb:<12-digit number> for -r; give each the bytes of a real record.
  for (let i = 0; i < keys; i += 1000) {
    const p = client.pipeline();
    for (let k = i; k < Math.min(keys, i + 1000); k++) p.set(`rb:${String(k).padStart(12, "0")}`, Buffer.from(sample));
    await p.exec();
  }
  client.disconnect();
  const out = execFileSync("redis-benchmark", ["-h", hostname, "-p", port, "-c", "1", "-n", "400000", "-P", "1000", "-r", String(keys), "-q", "GET", "rb:__rand_int__"], { encoding: "utf8" });
  const m = /([\d.]+) requests per second/.exec(out);
  if (!m) throw new Error(`no rate in redis-benchmark output:\n${out}`);
  return Number(m[1]);
}

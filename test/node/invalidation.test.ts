/**
 * What the node takes back stays taken back (issue 21): a purge is not undone
 * by a read that loaded its records before it, nor by the region's copy on
 * the node; a SKU whose records are gone is not kept warm; a process waiting
 * for another's regional fetch never answers from half a record pair; a look
 * reads no record. The node as deployed (2 workerd processes), a real edge
 * Redis watched from outside (MONITOR), the reference aggregator over HTTP.
 */
import Redis from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgeNode } from "../../scripts/edge-node";
import type { Regional } from "../../regional/server";
import { metricOf, type NodeStack, postTo, type Read, readSku, seedRecords, startNodeStack, stockRecord } from "./edge-node-client";

const TOKEN = "invalidation-test-token";
let regional: Regional;
let edge: Redis;
let region: Redis;
let node: EdgeNode;
let n = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const uniqueSku = (label: string): string => `${label}-${process.pid}-${n++}`;

async function seedEdge(sku: string, base: number): Promise<void> {
  await seedRecords(edge, sku, base);
}
async function seedRegion(sku: string, base: number): Promise<void> {
  await seedRecords(region, sku, base);
}

const post = (url: string, route: string, body: unknown): Promise<Response> => postTo(url, route, body, TOKEN);
const read = (url: string, sku: string, headers: Record<string, string> = {}): Promise<Read> => readSku(url, sku, { headers });

function proc(i: number): string {
  const p = node.processes().get(i);
  if (!p) throw new Error(`no process ${i}:\n${node.log()}`);
  return p.url;
}

/** Reads `sku` through both processes until `ok` holds for each; false past `withinMs`. */
async function bothWithin(sku: string, ok: (r: Read) => boolean, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  for (const url of [proc(1), proc(2)]) {
    for (;;) {
      if (ok(await read(url, sku))) break;
      if (Date.now() > until) return false;
      await sleep(20);
    }
  }
  return true;
}

let stack: NodeStack;
beforeAll(async () => {
  // A regional budget that waits for the slow region these tests inject (reads racing purges need one in flight).
  stack = await startNodeStack({ token: TOKEN, processes: 2, vars: { REGIONAL_TIMEOUT_MS: "1000" } });
  ({ regional, client: edge, node } = stack);
  region = new Redis(stack.regionalRedis.url);
});

afterAll(async () => {
  region?.disconnect();
  await stack?.stop();
});

describe("a SKU whose records are deleted", () => {
  it("is answered not_found by every process within 1 s of a re-warm that finds it gone, not warm with its old price", async () => {
    const sku = uniqueSku("gone");
    await seedEdge(sku, 10_000);
    expect(await (await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 3600 })).json()).toMatchObject({ warmed: 1 });
    expect(await read(proc(1), sku)).toMatchObject({ status: 200, cache: "HIT", amount: 10_000 });
    expect(await read(proc(2), sku)).toMatchObject({ status: 200, cache: "HIT", amount: 10_000 });
    await edge.del(`sku:${sku}:price`); // and the region lacks it
    const rewarm = await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 3600 });
    expect(await rewarm.json()).toMatchObject({ warmed: 0, failed: [{ sku, code: "not_found" }] });
    expect(await bothWithin(sku, (r) => r.status === 404 && r.code === "not_found", 1000)).toBe(true);
  });

  it("is answered not_found by every process within 1 s of the deletion alone (the node's change watch re-warms it)", async () => {
    const sku = uniqueSku("deleted");
    await seedEdge(sku, 10_000);
    await sleep(100); // the watch has seen the seeding (not warm then: nothing re-warmed)
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 3600 });
    expect(await read(proc(2), sku)).toMatchObject({ status: 200, cache: "HIT", amount: 10_000 });
    await edge.del(`sku:${sku}:stock`, `sku:${sku}:price`);
    expect(await bothWithin(sku, (r) => r.status === 404, 1000)).toBe(true);
  });
});

describe("the region's copy on the node", () => {
  it("is dropped by a purge: the price fixed at the region is served by every process within 1 s, labelled regional", async () => {
    const sku = uniqueSku("fixed");
    await seedRegion(sku, 5_000);
    expect(await read(proc(1), sku)).toMatchObject({ status: 200, cache: "MISS", amount: 5_000, source: "regional" });
    for (let i = 0; i < 40 && (await edge.exists(`sku:${sku}:regional`)) === 0; i++) await sleep(25);
    expect(await edge.exists(`sku:${sku}:regional`)).toBe(1);
    expect(await edge.exists(`sku:${sku}:stock`, `sku:${sku}:price`)).toBe(0); // the feed's keys are not written
    await seedRegion(sku, 4_000);
    expect((await post(proc(2), "/v1/purge", { skus: [sku] })).status).toBe(200);
    expect(await bothWithin(sku, (r) => r.amount === 4_000 && r.source === "regional", 1000)).toBe(true);
  });
});

describe("reads racing a purge or a prewarm", () => {
  /** The price the node's shared store holds for `sku` (its first segment), or null. */
  async function stored(sku: string): Promise<number | null> {
    const text = await edge.get(`sku:${sku}:agg:cn-east`);
    const m = text === null ? null : /"amount":(\d+)/.exec(text);
    return m ? Number(m[1]) : null;
  }

  /**
   * Reads of a SKU the edge lacks wait on a slow region (200 ms) on both
   * processes, each having read its records before `change` runs; after
   * `change` has answered, no read may show `old` once 1 s has passed (SPEC
   * §7), nor may the shared store hold it.
   */
  async function race(change: (sku: string) => Promise<void>, rounds: number): Promise<{ stale: number; storedOld: number }> {
    let stale = 0;
    let storedOld = 0;
    regional.faults.latencyMs = 200;
    try {
      for (let round = 0; round < rounds; round++) {
        const sku = uniqueSku("race");
        await seedRegion(sku, 1_000);
        const inFlight = [1, 2, 1, 2].map((p, i) => sleep(i * 10).then(() => read(proc(p), sku)));
        await sleep(80); // the region has read the old records for every one of them
        await change(sku);
        await Promise.all(inFlight);
        await sleep(1_000);
        for (const p of [1, 2, 1, 2]) if ((await read(proc(p), sku)).amount === 1_000) stale++;
        if ((await stored(sku)) === 1_000) storedOld++;
      }
    } finally {
      regional.faults.latencyMs = 0;
    }
    return { stale, storedOld };
  }

  it("never serves the older aggregate after a purge answered (past the 1 s bound), on either process", async () => {
    const result = await race(async (sku) => {
      await seedRegion(sku, 2_000); // the region fixes the price...
      const res = await post(proc(2), "/v1/purge", { skus: [sku] }); // ...and ops purge the node
      expect(res.status).toBe(200);
    }, 8);
    expect(result).toEqual({ stale: 0, storedOld: 0 });
  });

  it("never serves the older aggregate after a prewarm answered (past the 1 s bound), on either process", async () => {
    const result = await race(async (sku) => {
      await seedEdge(sku, 3_000); // the feed puts the SKU on the edge...
      const res = await post(proc(2), "/v1/prewarm", { skus: [sku] }); // ...and it is warmed from there
      expect(await res.json()).toMatchObject({ warmed: 1, fromEdge: 1 });
    }, 8);
    expect(result).toEqual({ stale: 0, storedOld: 0 });
  });
});

describe("a process waiting for another's regional fetch", () => {
  it("never answers from half a record pair: a SKU whose edge holds only its stock is served by every process at the region's price", async () => {
    const sku = uniqueSku("half");
    await edge.set(`sku:${sku}:stock`, stockRecord(sku)); // the edge has the stock record only
    await seedRegion(sku, 6_000);
    await sleep(100);
    regional.faults.latencyMs = 150;
    let reads: Read[];
    try {
      reads = await Promise.all([...Array.from({ length: 10 }, () => read(proc(1), sku)), ...Array.from({ length: 10 }, () => read(proc(2), sku))]);
    } finally {
      regional.faults.latencyMs = 0;
    }
    expect(reads.filter((r) => r.status !== 200)).toEqual([]);
    expect(reads.every((r) => r.amount === 6_000 && r.source === "regional")).toBe(true);
    // and no not_found was cached over the good aggregate
    expect(await bothWithin(sku, (r) => r.status === 200 && r.amount === 6_000, 500)).toBe(true);
  });
});

describe("a look (Cache-Control: only-if-cached)", () => {
  const look = { "Cache-Control": "only-if-cached" };

  it("reads no record of a cold key from the edge Redis (seen with MONITOR)", async () => {
    const sku = uniqueSku("look");
    await seedEdge(sku, 1_500);
    await sleep(100);
    const monitor = await edge.monitor();
    const seen: string[] = [];
    monitor.on("monitor", (_time: string, args: string[]) => seen.push(args.join(" ")));
    try {
      await sleep(50);
      expect(await read(proc(1), sku, look)).toMatchObject({ status: 504, code: "not_cached" });
      expect(await read(proc(2), sku, look)).toMatchObject({ status: 504, code: "not_cached" });
      await sleep(100);
    } finally {
      monitor.disconnect();
    }
    const touching = seen.filter((l) => l.includes(sku));
    expect(touching.some((l) => l.includes(`sku:${sku}:agg:cn-east`))).toBe(true); // the monitor saw the looks
    expect(touching.filter((l) => /:(stock|price|regional)\b/.test(l))).toEqual([]);
  });

  it("is counted as a look, not as a cache lookup: a verify does not move the node's hit ratio", async () => {
    const sku = uniqueSku("look-hit");
    await seedEdge(sku, 1_600);
    await post(proc(1), "/v1/prewarm", { skus: [sku] });
    const totals = async (): Promise<[number, number]> => {
      await sleep(1_500); // both processes' counts are in the node's totals
      return [await metricOf(node.url, 'edge_cache_lookups_total{result="hit"}'), await metricOf(node.url, 'edge_cache_looks_total{result="hit"}')];
    };
    const [hits, looks] = await totals();
    for (let i = 0; i < 5; i++) expect(await read(proc(1 + (i % 2)), sku, look)).toMatchObject({ status: 200, cache: "HIT" });
    expect(await totals()).toEqual([hits, looks + 5]);
  });

  it("right after a re-warm with a longer ttl made through the other process, tells that ttl, not the older entry this process holds in memory", async () => {
    // What `prewarm verify` asks: one multi-get of the plan's SKUs. Plain records (no promotion): nothing caps their validity.
    const skus = Array.from({ length: 30 }, () => uniqueSku("rewarm"));
    for (const sku of skus) await seedEdge(sku, 2_000);
    const cachedUntil = async (url: string): Promise<number[]> => {
      const res = await fetch(`${url}/v1/skus?ids=${skus.join(",")}`, { headers: look });
      const body = (await res.json()) as { cachedUntil: Record<string, number> };
      return skus.map((s) => body.cachedUntil[s] ?? 0);
    };
    expect(await (await post(proc(1), "/v1/prewarm", { skus, ttl: 300 })).json()).toMatchObject({ warmed: 30 });
    // Process 2 holds the 300 s entries in memory (a first verify looked there) ...
    expect(Math.max(...(await cachedUntil(proc(2))))).toBeLessThan(Date.now() + 301_000);
    // ... and has just read the change log (in the background of /healthz), so it trusts that memory for 800 ms.
    await fetch(`${proc(2)}/healthz`).then((r) => r.arrayBuffer());
    await sleep(50);
    expect(await (await post(proc(1), "/v1/prewarm", { skus, ttl: 7200 })).json()).toMatchObject({ warmed: 30 });
    const rewarmed = Date.now();
    // A verify as soon as the run has answered: the node holds the 7200 s entries, so that is what a look says, on either process.
    expect(Math.min(...(await cachedUntil(proc(2))))).toBeGreaterThan(rewarmed + 7_190_000);
    const one = await fetch(`${proc(2)}/v1/skus/${skus[0]}`, { headers: look });
    expect(Number(one.headers.get("X-Cached-Until"))).toBeGreaterThan(rewarmed + 7_190_000);
    expect(Math.min(...(await cachedUntil(proc(1))))).toBeGreaterThan(rewarmed + 7_190_000);
  });
});

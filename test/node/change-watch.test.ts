/**
 * The node's change watch (SPEC §7, `edge-node/change-watch.ts`) on real
 * nodes (`npm run node`'s own start-up, real workerd processes, a real Redis,
 * the reference regional aggregator): every region's aggregates, every
 * event that changes a record, and re-warms the node refused at first.
 */
import Redis from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEdgeNode, type EdgeNode } from "../../scripts/edge-node";
import { startRedis } from "../../scripts/redis-server";
import type { Regional } from "../../regional/server";
import { metricOf, msUntil, type NodeStack, postTo, priceRecord, type Read, readSku, seedRecords, startNodeStack } from "./edge-node-client";

const TOKEN = "watch-test-token";
let regional: Regional;
let client: Redis;
/** EDGE_REGION cn-east, EDGE_REGIONS unset: any region is served. */
let node: EdgeNode;
let n = 0;

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

async function seedSku(base = 10_000, redisClient = client): Promise<string> {
  const sku = `watch-${process.pid}-${n++}`;
  await seedRecords(redisClient, sku, base);
  return sku;
}

const prewarm = (url: string, body: unknown): Promise<Response> => postTo(url, "/v1/prewarm", body, TOKEN);
const read = (url: string, sku: string, region?: string): Promise<Read> => readSku(url, sku, { region });

/** SKUs the node's prewarms have answered for (warmed or failed), by the node's totals. */
async function prewarmedSkus(url: string): Promise<number> {
  return (await metricOf(url, 'edge_prewarm_skus_total{result="warmed"}')) + (await metricOf(url, 'edge_prewarm_skus_total{result="failed"}'));
}

/** Waits (up to `withinMs`) for the node's totals to reach `atLeast` prewarmed SKUs; the last count. */
async function prewarmedReach(url: string, atLeast: number, withinMs: number): Promise<number> {
  const deadline = performance.now() + withinMs;
  let now = await prewarmedSkus(url);
  while (now < atLeast && performance.now() < deadline) {
    await sleep(100);
    now = await prewarmedSkus(url);
  }
  return now;
}

/** A warm SKU at 10,000, warmed for 600 s, and the node's prewarm count once that prewarm is in its totals. */
async function warmSku(url: string): Promise<{ sku: string; prewarmed: number }> {
  const sku = await seedSku(10_000);
  expect((await prewarm(url, { skus: [sku], ttl: 600 })).status).toBe(200);
  expect(await read(url, sku)).toMatchObject({ status: 200, amount: 10_000 });
  await sleep(1200); // the prewarm is in the node's totals
  return { sku, prewarmed: await prewarmedSkus(url) };
}

let stack: NodeStack;
beforeAll(async () => {
  stack = await startNodeStack({ token: TOKEN, processes: 1 });
  ({ regional, client, node } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

describe("a node that serves any region (EDGE_REGIONS unset)", () => {
  it("serves a changed record within 1 s in a ?region=cn-north aggregate, not only in EDGE_REGION's", async () => {
    const sku = await seedSku(10_000);
    expect(await read(node.url, sku, "cn-north")).toMatchObject({ status: 200, cache: "MISS", amount: 10_000 });
    expect(await client.exists(`sku:${sku}:agg:cn-north`)).toBe(1);
    expect(await client.exists(`sku:${sku}:agg:cn-east`)).toBe(0);
    // The watch learns the regions the node holds aggregates in by a paced SCAN (a pass at most every second).
    for (let i = 0; i < 50 && !node.log().includes("holds aggregates of region cn-north"); i++) await sleep(100);
    const since = performance.now();
    await client.set(`sku:${sku}:price`, priceRecord(sku, 8_000));
    const ms = await msUntil(node.url, sku, 8_000, since, 3000, "cn-north");
    expect(ms, node.log()).not.toBeNull();
    expect(ms!).toBeLessThan(1000);
    expect(await read(node.url, sku, "cn-north")).toMatchObject({ cache: "HIT", amount: 8_000 });
    expect(await client.exists(`sku:${sku}:agg:cn-east`)).toBe(0); // nothing warmed where it was not
  });

  it("serves a change made before the watch knew the region once it learns it, rather than at the aggregate's TTL", async () => {
    const sku = await seedSku(10_000);
    expect(await read(node.url, sku, "cn-south")).toMatchObject({ status: 200, cache: "MISS", amount: 10_000 });
    const since = performance.now();
    await client.set(`sku:${sku}:price`, priceRecord(sku, 8_500)); // at once: cn-south is not known yet
    expect(await msUntil(node.url, sku, 8_500, since, 4000, "cn-south"), node.log()).not.toBeNull();
  });
});

describe("a record changed other than by SET", () => {
  it("is seen when the feed writes a temporary key and RENAMEs it into place", async () => {
    const { sku } = await warmSku(node.url);
    await client.set(`sku:${sku}:price.tmp`, priceRecord(sku, 7_000)); // not a record key: nothing to see yet
    await sleep(100);
    expect(await read(node.url, sku)).toMatchObject({ amount: 10_000 });
    const since = performance.now();
    await client.rename(`sku:${sku}:price.tmp`, `sku:${sku}:price`);
    const ms = await msUntil(node.url, sku, 7_000, since, 3000);
    expect(ms, node.log()).not.toBeNull();
    expect(ms!).toBeLessThan(1000);
  });

  it("is seen when a record is RESTOREd over the old one", async () => {
    const { sku } = await warmSku(node.url);
    await client.set(`scratch:${sku}`, priceRecord(sku, 6_500));
    const dump = await client.dumpBuffer(`scratch:${sku}`);
    const since = performance.now();
    await client.restore(`sku:${sku}:price`, 0, dump!, "REPLACE");
    const ms = await msUntil(node.url, sku, 6_500, since, 3000);
    expect(ms, node.log()).not.toBeNull();
    expect(ms!).toBeLessThan(1000);
  });

  it("is seen when a record key expires (the SKU is re-warmed), not when only its TTL is set or removed", async () => {
    const { sku, prewarmed } = await warmSku(node.url);
    await client.expire(`sku:${sku}:price`, 3600);
    await client.persist(`sku:${sku}:price`);
    await sleep(1200);
    expect(await prewarmedSkus(node.url)).toBe(prewarmed);
    await client.pexpire(`sku:${sku}:price`, 50);
    // The re-warm finds no price in the edge nor in the region: not_found (the prewarm's answer counts the SKU as failed).
    expect(await prewarmedReach(node.url, prewarmed + 1, 4000), node.log()).toBe(prewarmed + 1);
    expect(await client.exists(`sku:${sku}:price`)).toBe(0);
  });
});

describe("a re-warm the node refuses at first", () => {
  it("is retried, honouring Retry-After, while the node sheds work as overloaded, and served once it recovers", async () => {
    // One request at work with the edge Redis per process, and a slow region: one cold miss holds the node's only slot for 1.5 s.
    // Its own edge Redis: the other node's watch must not re-warm in its place.
    const own = await startRedis();
    const ownClient = new Redis(own.url);
    const busy = await startEdgeNode({
      vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: own.url, REGIONAL_URL: regional.url, PREWARM_TOKEN: TOKEN, EDGE_REDIS_MAX_SESSIONS: "1", REGIONAL_TIMEOUT_MS: "3000" },
      processes: 1,
    });
    try {
      const sku = await seedSku(10_000, ownClient);
      await sleep(200); // the watch has seen the seeding while the SKU was not warm: no re-warm of its own holds the slot below
      expect((await prewarm(busy.url, { skus: [sku], ttl: 600 })).status).toBe(200);
      expect(await read(busy.url, sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
      regional.faults.latencyMs = 1500;
      const miss = fetch(`${busy.url}/v1/skus/absent-${process.pid}`).then((r) => r.body?.cancel());
      await sleep(100);
      const since = performance.now();
      await ownClient.set(`sku:${sku}:price`, priceRecord(sku, 5_500));
      await miss;
      regional.faults.latencyMs = 0;
      expect(await msUntil(busy.url, sku, 5_500, since, 5000), busy.log()).not.toBeNull();
      expect(busy.log()).toMatch(/change watch: re-warming 1 changed SKUs of cn-east failed, retrying: .* 503 .*overloaded/);
      // Retry-After: 1 was honoured: no second attempt within the second after the first refusal.
      expect(busy.log().match(/re-warming 1 changed SKUs of cn-east failed, retrying/g)!.length).toBeLessThanOrEqual(2);
    } finally {
      regional.faults.latencyMs = 0;
      await busy.stop();
      ownClient.disconnect();
      await own.stop();
    }
  });

  it("is retried while the node's only process restarts, and served once it is back", async () => {
    const { sku } = await warmSku(node.url);
    const pid = [...node.processes().values()].at(-1)!.pid;
    process.kill(pid, "SIGKILL");
    const since = performance.now();
    await client.set(`sku:${sku}:price`, priceRecord(sku, 4_500));
    for (let i = 0; i < 100 && !/process 1 \(pid \d+\) restarted/.test(node.log()); i++) await sleep(100);
    expect(await msUntil(node.url, sku, 4_500, since, 10_000), node.log()).not.toBeNull();
  });
});

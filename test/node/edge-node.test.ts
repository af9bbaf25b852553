/**
 * The self-hosted edge node as deployed (`npm run node`, SPEC §7): the
 * wrangler bundle in real workerd processes sharing one socket, a real Redis.
 * Each process is also reached alone through its probe port, so a test can
 * warm through one process and read through another.
 */
import autocannon from "autocannon";
import Redis from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEdgeNode, type EdgeNode } from "../../scripts/edge-node";
import type { RedisProcess } from "../../scripts/redis-server";
import type { Regional } from "../../regional/server";
import { BUNDLE_DIR, nodeConfig } from "../../edge-node/workerd-config";
import { metricOf, msUntil, type NodeStack, postTo, priceRecord, type Read, readSku, seedRecords, startNodeStack } from "./edge-node-client";

const TOKEN = "node-test-token";
let redis: RedisProcess;
let regionalRedis: RedisProcess;
let regional: Regional;
let client: Redis;
let node: EdgeNode;
let n = 0;

async function seedSku(base = 10_000): Promise<string> {
  const sku = `node-${process.pid}-${n++}`;
  await seedRecords(client, sku, base);
  return sku;
}

async function setPrice(sku: string, base: number): Promise<void> {
  await client.set(`sku:${sku}:price`, priceRecord(sku, base));
}

const post = (url: string, route: string, body: unknown): Promise<Response> => postTo(url, route, body, TOKEN);
const read = (url: string, sku: string): Promise<Read> => readSku(url, sku);

function proc(i: number): string {
  const p = node.processes().get(i);
  if (!p) throw new Error(`no process ${i}:\n${node.log()}`);
  return p.url;
}

let stack: NodeStack;
beforeAll(async () => {
  stack = await startNodeStack({ token: TOKEN, processes: 2 });
  ({ redis, regionalRedis, regional, client, node } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

describe("npm run node", () => {
  it("serves reads and prewarms with no Cache API in its workerd config", async () => {
    const config = nodeConfig(BUNDLE_DIR, 48 * 1024 * 1024);
    expect(config).not.toMatch(/^\s*cacheApiOutbound\s*=/m);
    // the memory budget: V8's old generation capped at the hot cache's budget + 64 MiB
    expect(config).toContain('"--max-old-space-size=112"');
    expect(node.processes().size).toBe(2);
    const sku = await seedSku();
    const health = await fetch(`${node.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", store: "redis" });
    const warm = await post(node.url, "/v1/prewarm", { skus: [sku] });
    expect(warm.status).toBe(200);
    expect(await warm.json()).toMatchObject({ warmed: 1, failed: [] });
    expect(await read(node.url, sku)).toMatchObject({ status: 200, amount: 10_000 });
    const cold = await seedSku(7_000);
    expect(await read(node.url, cold)).toMatchObject({ status: 200, cache: "MISS", amount: 7_000 });
    const purge = await post(node.url, "/v1/purge", { skus: [sku] });
    expect(purge.status).toBe(200);
  });

  it("serves a key warmed through one process as a HIT from the other, reading no record", async () => {
    const sku = await seedSku();
    await new Promise((res) => setTimeout(res, 200)); // the change watch has seen the seeding (the SKU was not warm: nothing to re-warm)
    expect((await post(proc(1), "/v1/prewarm", { skus: [sku] })).status).toBe(200);
    const reads = async (): Promise<number> => {
      await new Promise((res) => setTimeout(res, 2000)); // both processes' counts are in the node's totals (heartbeat 1 s)
      return metricOf(node.url, "edge_redis_record_reads_total");
    };
    const before = await reads();
    expect(await read(proc(2), sku)).toMatchObject({ status: 200, cache: "HIT", amount: 10_000 });
    expect(await reads()).toBe(before);
    // A cold key's records are read once, with its (absent) aggregate. (Read right after its records were
    // written, the change watch would also re-warm it: safe, and one more read.)
    const cold = await seedSku();
    await new Promise((res) => setTimeout(res, 200));
    expect(await read(proc(2), cold)).toMatchObject({ status: 200, cache: "MISS" });
    expect(await reads()).toBe(before + 1);
  });

  it("serves the new price from every process within 1 s of a purge", async () => {
    const sku = await seedSku(10_000);
    await post(proc(1), "/v1/prewarm", { skus: [sku] });
    // both processes hold the old aggregate in memory
    expect(await read(proc(1), sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
    expect(await read(proc(2), sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
    await setPrice(sku, 8_000);
    expect((await post(proc(1), "/v1/purge", { skus: [sku] })).status).toBe(200);
    const purged = performance.now();
    const [p1, p2] = await Promise.all([msUntil(proc(1), sku, 8_000, purged, 1000), msUntil(proc(2), sku, 8_000, purged, 1000)]);
    expect(p1).not.toBeNull();
    expect(p2).not.toBeNull();
  });

  it("serves a re-warmed entry from every process within 1 s", async () => {
    const sku = await seedSku(10_000);
    await post(proc(1), "/v1/prewarm", { skus: [sku] });
    expect(await read(proc(2), sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
    await setPrice(sku, 9_000);
    expect((await post(proc(1), "/v1/prewarm", { skus: [sku] })).status).toBe(200);
    const warmed = performance.now();
    expect(await msUntil(proc(2), sku, 9_000, warmed, 1000)).not.toBeNull();
    // and an idle process that wakes up after the bound serves the new one at once
    await setPrice(sku, 9_500);
    await post(proc(2), "/v1/prewarm", { skus: [sku] });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await read(proc(1), sku)).toMatchObject({ amount: 9_500 });
  });

  it("gives the node's totals on /metrics whichever process answers, never going backwards", async () => {
    const sku = await seedSku();
    await read(proc(1), sku);
    const before = await metricOf(proc(1), 'edge_http_requests_total{route="/v1/skus/:sku",status="200"}');
    for (let i = 0; i < 5; i++) await read(proc(1), sku);
    for (let i = 0; i < 5; i++) await read(proc(2), sku);
    // process 2 flushed its own count when it answered; process 1 flushes within its sync interval
    await new Promise((r) => setTimeout(r, 300));
    await read(proc(1), sku);
    await new Promise((r) => setTimeout(r, 100));
    const seen2 = await metricOf(proc(2), 'edge_http_requests_total{route="/v1/skus/:sku",status="200"}');
    expect(seen2).toBeGreaterThanOrEqual(before + 10);
    expect(await metricOf(proc(1), "edge_node_processes")).toBe(2);
    expect(await metricOf(node.url, "edge_redis_errors_total")).toBe(0);
  });
});

describe("a cold key read by every process at once", () => {
  it("costs the node one regional request, not one per process", async () => {
    const sku = `region-only-${process.pid}`;
    const r = new Redis(regionalRedis.url);
    await seedRecords(r, sku, 4_200);
    r.disconnect();
    const before = [...regional.counters.requests.values()].reduce((a, b) => a + b, 0);
    const reads = await Promise.all([...Array.from({ length: 50 }, () => read(proc(1), sku)), ...Array.from({ length: 50 }, () => read(proc(2), sku))]);
    expect(reads.every((x) => x.status === 200 && x.amount === 4_200)).toBe(true);
    const after = [...regional.counters.requests.values()].reduce((a, b) => a + b, 0);
    expect(after - before).toBe(1);
  });
});

describe("a process that dies", () => {
  it("is restarted while the node keeps answering, with errors no more than the requests it had in flight", async () => {
    const sku = await seedSku();
    await post(node.url, "/v1/prewarm", { skus: [sku] });
    const before = node.processes().get(1)!.pid;
    const counted = await metricOf(node.url, 'edge_prewarm_skus_total{result="warmed"}');
    const connections = 6;
    const load = autocannon({ url: `${node.url}/v1/skus/${sku}`, connections, duration: 4 });
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(before, "SIGKILL");
    const result = await load;
    const failed = result.errors + result.timeouts + result.non2xx;
    expect(result["2xx"]).toBeGreaterThan(1000);
    expect(failed).toBeLessThanOrEqual(connections);
    for (let i = 0; i < 100 && node.processes().get(1)!.pid === before; i++) await new Promise((r) => setTimeout(r, 50));
    const after = node.processes().get(1)!;
    expect(after.pid).not.toBe(before);
    expect((await fetch(`${after.url}/healthz`)).status).toBe(200);
    // the node's counters survive the process
    expect(await metricOf(after.url, 'edge_prewarm_skus_total{result="warmed"}')).toBeGreaterThanOrEqual(counted);
  });
});

describe("past its capacity", () => {
  it("refuses work with 503 overloaded and Retry-After before any I/O, and still answers /healthz and hits", async () => {
    const small = await startEdgeNode({
      vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, REGIONAL_URL: regional.url, PREWARM_TOKEN: TOKEN, EDGE_REDIS_MAX_SESSIONS: "2", REGIONAL_TIMEOUT_MS: "2000" },
      processes: 1,
    });
    try {
      const warm = await seedSku(3_300);
      await post(small.url, "/v1/prewarm", { skus: [warm] });
      regional.faults.latencyMs = 300;
      // misses the edge lacks: each waits on the slow region while holding a slot
      const misses = Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${small.url}/v1/skus/absent-${process.pid}-${i}`)));
      await new Promise((r) => setTimeout(r, 50));
      expect(await read(small.url, warm)).toMatchObject({ status: 200, cache: "HIT", amount: 3_300 });
      const answers = await misses;
      const shed = answers.filter((r) => r.status === 503);
      expect(shed.length).toBeGreaterThanOrEqual(4);
      for (const r of shed) {
        expect(r.headers.get("Retry-After")).toBe("1");
        expect(((await r.json()) as { error: { code: string } }).error.code).toBe("overloaded");
      }
      expect((await fetch(`${small.url}/healthz`)).status).toBe(200);
      expect(await metricOf(small.url, "edge_requests_shed_total")).toBeGreaterThanOrEqual(shed.length);
    } finally {
      regional.faults.latencyMs = 0;
      await small.stop();
    }
  });
});

describe("EDGE_REGIONS", () => {
  it("refuses any other region with 400 on reads, prewarms and purges, and serves its own", async () => {
    const regions = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REGIONS: "cn-east,cn-north", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: TOKEN }, processes: 1 });
    try {
      const sku = await seedSku(2_500);
      const bad = [
        await fetch(`${regions.url}/v1/skus/${sku}?region=junk-1`),
        await fetch(`${regions.url}/v1/skus?ids=${sku}&region=junk-2`),
        await post(regions.url, "/v1/prewarm", { region: "junk-3", skus: [sku] }),
        await post(regions.url, "/v1/purge", { region: "junk-4", skus: [sku] }),
      ];
      for (const res of bad) {
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "bad_request", message: expect.stringMatching(/EDGE_REGIONS/) });
      }
      expect((await post(regions.url, "/v1/prewarm", { region: "cn-north", skus: [sku] })).status).toBe(200);
      expect(await read(regions.url, sku)).toMatchObject({ status: 200, amount: 2_500 });
    } finally {
      await regions.stop();
    }
  });
});

describe("GET /v1/hot on a node", () => {
  it("gives the node's reads, every process's together, within about 2 s", async () => {
    const sku = await seedSku();
    for (let i = 0; i < 4; i++) await read(proc(1), sku);
    for (let i = 0; i < 3; i++) await read(proc(2), sku);
    const readsOf = async (url: string): Promise<number | undefined> => {
      const res = await fetch(`${url}/v1/hot?top=1000`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(res.headers.get("X-Hot-Scope")).toBe("node");
      const { skus } = (await res.json()) as { skus: { sku: string; reads: number }[] };
      return skus.find((s) => s.sku === sku)?.reads;
    };
    // Each process adds its counts to the node's at most once a second, with a sync (the supervisor's heartbeat wakes an idle one).
    let reads: number | undefined;
    for (let i = 0; i < 30 && reads !== 7; i++) {
      await new Promise((res) => setTimeout(res, 100));
      reads = await readsOf(proc(1));
    }
    expect(reads).toBe(7);
    expect(await readsOf(proc(2))).toBe(7);
  });
});

describe("a record that changes in the edge Redis", () => {
  it("is served by every process within 1 s when its SKU is warm, with no purge or prewarm, keeping the aggregate's TTL", async () => {
    const sku = await seedSku(10_000);
    expect((await post(node.url, "/v1/prewarm", { skus: [sku], ttl: 600 })).status).toBe(200);
    expect(await read(proc(1), sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
    expect(await read(proc(2), sku)).toMatchObject({ cache: "HIT", amount: 10_000 });
    await new Promise((res) => setTimeout(res, 1200)); // the prewarm is in the node's totals
    const warmed = await metricOf(node.url, 'edge_prewarm_skus_total{result="warmed"}');
    const since = performance.now();
    await setPrice(sku, 8_000);
    const [a, b] = await Promise.all([msUntil(proc(1), sku, 8_000, since, 3000), msUntil(proc(2), sku, 8_000, since, 3000)]);
    expect(a, "process 1").not.toBeNull();
    expect(b, "process 2").not.toBeNull();
    expect(Math.max(a!, b!)).toBeLessThan(1000);
    expect(await read(proc(1), sku)).toMatchObject({ cache: "HIT", amount: 8_000 });
    // Re-warmed for the rest of the life it was warmed for (600 s), not the node's default 30 s.
    const grace = 300_000; // STALE_IF_ERROR_SECONDS: the store keeps an aggregate that much longer
    expect((await client.pttl(`sku:${sku}:agg:cn-east`)) - grace).toBeGreaterThan(590_000);
    // One change, one re-warm of one SKU (node totals reach /metrics within about a second).
    let now = warmed;
    for (let i = 0; i < 40 && now < warmed + 1; i++) {
      await new Promise((res) => setTimeout(res, 100));
      now = await metricOf(node.url, 'edge_prewarm_skus_total{result="warmed"}');
    }
    await new Promise((res) => setTimeout(res, 1200));
    expect(await metricOf(node.url, 'edge_prewarm_skus_total{result="warmed"}')).toBe(warmed + 1);
  });

  it("is still seen after the edge Redis lost its notification settings and the watch reconnected", async () => {
    await client.config("SET", "notify-keyspace-events", ""); // as a restarted Redis without its runtime config
    await client.call("CLIENT", "KILL", "TYPE", "normal"); // every connection drops (ours too; ioredis reconnects)
    await new Promise((res) => setTimeout(res, 1000));
    expect(String(((await client.config("GET", "notify-keyspace-events")) as string[])[1])).toMatch(/K/);
    const sku = await seedSku(10_000);
    expect((await post(node.url, "/v1/prewarm", { skus: [sku], ttl: 600 })).status).toBe(200);
    const since = performance.now();
    await setPrice(sku, 7_500);
    expect(await msUntil(proc(1), sku, 7_500, since, 3000)).not.toBeNull();
  });

  it("warms nothing when its SKU is not warm on the node", async () => {
    const sku = await seedSku(10_000);
    await setPrice(sku, 9_000);
    await new Promise((res) => setTimeout(res, 300));
    expect(await client.exists(`sku:${sku}:agg:cn-east`)).toBe(0);
    expect(await read(proc(1), sku)).toMatchObject({ cache: "MISS", amount: 9_000 });
  });
});

describe("the SPEC defaults: a node started with no timeout variables", () => {
  async function regionOnly(base: number): Promise<string> {
    const sku = `defaults-${process.pid}-${n++}`;
    const r = new Redis(regionalRedis.url);
    await seedRecords(r, sku, base);
    r.disconnect();
    return sku;
  }

  it("waits for a region within REGIONAL_TIMEOUT_MS (150 ms) and gives up on one slower (300 ms)", async () => {
    const fast = await regionOnly(1_500);
    const slow = await regionOnly(3_000);
    try {
      regional.faults.latencyMs = 40;
      expect(await read(proc(1), fast)).toMatchObject({ status: 200, amount: 1_500 });
      // Under a larger budget (the worker pool's 400 ms) this region would answer in time.
      regional.faults.latencyMs = 300;
      const res = await fetch(`${proc(1)}/v1/skus/${slow}`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: "regional_unavailable" } });
    } finally {
      regional.faults.latencyMs = 0;
    }
  });

  it("gives up on an edge Redis that stalls past EDGE_REDIS_TIMEOUT_MS (250 ms for a read) and answers from the region", async () => {
    const sku = await seedSku(10_000); // the edge's copy
    const r = new Redis(regionalRedis.url);
    await seedRecords(r, sku, 9_000); // the region's copy
    r.disconnect();
    const errors = await metricOf(proc(2), "edge_redis_errors_total");
    // The edge Redis answers nobody for 700 ms. A read tries it twice (the store, then the records),
    // each within 250 ms: both give up before it is back. With the worker pool's 400 ms, the second
    // would outlast the pause and answer the edge's copy.
    await client.call("CLIENT", "PAUSE", "700", "ALL");
    expect(await read(proc(2), sku)).toMatchObject({ status: 200, amount: 9_000 });
    await new Promise((res) => setTimeout(res, 800)); // the pause is over; node totals flush within ~200 ms
    expect(await metricOf(proc(2), "edge_redis_errors_total")).toBeGreaterThan(errors);
  });
});

describe("SIGTERM", () => {
  it("lets a request in flight finish before the node exits", async () => {
    const sku = `drain-${process.pid}`;
    const r = new Redis(regionalRedis.url);
    await seedRecords(r, sku, 1_234);
    r.disconnect();
    const draining = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, REGIONAL_URL: regional.url, REGIONAL_TIMEOUT_MS: "5000", PREWARM_TOKEN: TOKEN }, processes: 1 });
    regional.faults.latencyMs = 1000;
    try {
      const inFlight = read(draining.url, sku);
      await new Promise((res) => setTimeout(res, 300));
      const stopped = draining.stop();
      expect(await inFlight).toMatchObject({ status: 200, amount: 1_234 });
      await stopped;
      expect(draining.process.exitCode).toBe(0);
    } finally {
      regional.faults.latencyMs = 0;
      await draining.stop();
    }
  });

  it("stops the node and leaves no workerd process behind", async () => {
    const extra = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: TOKEN }, processes: 2 });
    const pids = [...extra.processes().values()].map((p) => p.pid);
    expect(pids).toHaveLength(2);
    await extra.stop();
    expect(extra.process.exitCode).toBe(0);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
    await expect(fetch(`${extra.url}/healthz`)).rejects.toThrow();
  });
});

/**
 * The outside of a self-hosted node under test, as the node tests see it:
 * records as the feed writes them, the write routes with a token, reads with
 * what the tests look at, and the node's /metrics.
 */
import Redis from "ioredis";
import { encodeRecord } from "../../records/encode";
import { startRegional, type Regional } from "../../regional/server";
import { startEdgeNode, type EdgeNode } from "../../scripts/edge-node";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";

/** A stock record as the feed writes it: 50 units in cn-east. */
export function stockRecord(sku: string): Buffer {
  return Buffer.from(encodeRecord({ sku, warehouses: [{ id: "w1", regions: ["cn-east"], onHand: 50, reserved: 0 }], updatedAt: 1 }));
}

/** A price record as the feed writes it. */
export function priceRecord(sku: string, base: number): Buffer {
  return Buffer.from(encodeRecord({ sku, currency: "CNY", base, updatedAt: Date.now() }));
}

/** A POST of JSON to a node's write route with `token`. */
export function postTo(url: string, route: string, body: unknown, token: string): Promise<Response> {
  return fetch(`${url}${route}`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
}

/** What a test looks at in a read's answer. */
export interface Read {
  status: number;
  cache: string | null;
  amount: number | undefined;
  source: string | undefined;
  code: string | undefined;
  computedAt: number | undefined;
  /** X-Rules-Version: the rules that computed it. */
  rules: string | null;
}

export async function readSku(url: string, sku: string, o: { region?: string; headers?: Record<string, string> } = {}): Promise<Read> {
  const res = await fetch(`${url}/v1/skus/${sku}${o.region ? `?region=${o.region}` : ""}`, { headers: o.headers ?? {} });
  const body = (await res.json()) as { price?: { amount: number }; source?: string; computedAt?: number; error?: { code: string } };
  return { status: res.status, cache: res.headers.get("X-Cache"), amount: body.price?.amount, source: body.source, code: body.error?.code, computedAt: body.computedAt, rules: res.headers.get("X-Rules-Version") };
}

/** Reads `sku` until it shows `amount`; the ms since `since` that took, or null past `withinMs`. */
export async function msUntil(url: string, sku: string, amount: number, since: number, withinMs: number, region?: string): Promise<number | null> {
  for (;;) {
    const r = await readSku(url, sku, { region });
    const at = performance.now() - since;
    if (r.amount === amount) return at;
    if (at > withinMs) return null;
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** One sample of the node's /metrics; every series is exported from the start (SPEC §5.2), so a missing one fails. */
export async function metricOf(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`${series} is not exported:\n${text}`);
  return Number(line.slice(series.length + 1));
}

/** A node under test with what it stands on: its edge Redis, the reference aggregator and the aggregator's own Redis. */
export interface NodeStack {
  redis: RedisProcess;
  regionalRedis: RedisProcess;
  regional: Regional;
  /** A client of the node's edge Redis (the feed's view). */
  client: Redis;
  node: EdgeNode;
  /** Stops all of it; idempotent enough for an afterAll after a failed start. */
  stop(): Promise<void>;
}

/** Starts a node of `processes` workerd processes (EDGE_REGION cn-east, the token, `vars` on top) on a fresh edge Redis, beside a fresh region. */
export async function startNodeStack(o: { token: string; processes: number; vars?: Record<string, string>; bundleDir?: string }): Promise<NodeStack> {
  const redis = await startRedis();
  const regionalRedis = await startRedis();
  const regional = await startRegional({ redisUrl: regionalRedis.url });
  const client = new Redis(redis.url);
  const node = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, REGIONAL_URL: regional.url, PREWARM_TOKEN: o.token, ...o.vars }, processes: o.processes, ...(o.bundleDir ? { bundleDir: o.bundleDir } : {}) });
  return {
    redis,
    regionalRedis,
    regional,
    client,
    node,
    async stop() {
      await node.stop();
      client.disconnect();
      await regional.close();
      await regionalRedis.stop();
      await redis.stop();
    },
  };
}

/** Both records of `sku` as the feed writes them (50 units in cn-east, `base` as price), in `redis` (an edge's or a region's). */
export async function seedRecords(redis: Redis, sku: string, base: number): Promise<void> {
  await redis.set(`sku:${sku}:stock`, stockRecord(sku));
  await redis.set(`sku:${sku}:price`, priceRecord(sku, base));
}

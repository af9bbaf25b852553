/** The reference regional aggregator over real HTTP, on its own real redis-server. */
import Redis from "ioredis";
import { Packr } from "msgpackr";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeRecord } from "../../records/encode";
import { startRegional, type Regional } from "../../regional/server";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";

const packr = new Packr({ useRecords: false });
let redis: RedisProcess;
let client: Redis;
let regional: Regional;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  regional = await startRegional({ redisUrl: redis.url, token: "t0ken" });
});
afterEach(() => {
  regional.faults = { latencyMs: 0, errorRate: 0, outage: false, corruptBody: false };
});
afterAll(async () => {
  await regional.close();
  client.disconnect();
  await redis.stop();
});

function call(body: unknown, token = "t0ken"): Promise<Response> {
  return fetch(`${regional.url}/v1/records`, {
    method: "POST",
    headers: { "Content-Type": "application/msgpack", Authorization: `Bearer ${token}` },
    body: new Uint8Array(body instanceof Uint8Array ? body : packr.pack(body)),
  });
}

async function getCalls(): Promise<number> {
  return Number(/cmdstat_get:calls=(\d+)/.exec(await client.info("commandstats"))?.[1] ?? 0);
}

describe("POST /v1/records", () => {
  it("answers the stored bytes of each record unchanged, in one pipelined round trip, and omits unknown SKUs", async () => {
    const stock = encodeRecord({ sku: "a", warehouses: [], updatedAt: 1_763_970_000_000 });
    const price = encodeRecord({ sku: "a", currency: "EUR", base: 100, updatedAt: 1_763_970_000_000 });
    await client.set("sku:a:stock", Buffer.from(stock));
    await client.set("sku:a:price", Buffer.from(price));
    await client.set("sku:b:price", Buffer.from(price));
    const before = await getCalls();
    const res = await call({ region: "cn-east", skus: ["a", "b", "nobody"] });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/msgpack");
    const body = packr.unpack(new Uint8Array(await res.arrayBuffer())) as { records: Record<string, { stock: Uint8Array | null; price: Uint8Array | null }> };
    expect(Object.keys(body.records).sort()).toEqual(["a", "b"]);
    expect(Buffer.from(body.records["a"]!.stock!)).toEqual(Buffer.from(stock));
    expect(Buffer.from(body.records["a"]!.price!)).toEqual(Buffer.from(price));
    expect(body.records["b"]!.stock).toBeNull();
    expect((await getCalls()) - before).toBe(6);
  });

  it("answers ids named like Object.prototype's members by what it holds: known ones (even __proto__) present, unknown ones absent", async () => {
    const stock = encodeRecord({ sku: "constructor", warehouses: [], updatedAt: 1_763_970_000_000 });
    await client.set("sku:constructor:stock", Buffer.from(stock));
    await client.set("sku:__proto__:stock", Buffer.from(stock));
    const res = await call({ region: "cn-east", skus: ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"] });
    expect(res.status).toBe(200);
    // Decoded to Maps: an object would hide a `__proto__` key.
    const body = new Packr({ useRecords: false, mapsAsObjects: false }).unpack(new Uint8Array(await res.arrayBuffer())) as Map<string, Map<string, Map<string, Uint8Array | null>>>;
    const records = body.get("records")!;
    expect([...records.keys()]).toEqual(["constructor", "__proto__"]);
    for (const id of ["constructor", "__proto__"]) expect([id, Buffer.from(records.get(id)!.get("stock")!)]).toEqual([id, Buffer.from(stock)]);
  });

  it.each([
    ["a wrong token", { region: "r", skus: ["a"] }, "nope", 401],
    ["a body that is not MessagePack", new Uint8Array([0xc1]), "t0ken", 400],
    ["no skus", { region: "r" }, "t0ken", 400],
    ["more than 1,000 SKUs", { region: "r", skus: Array.from({ length: 1001 }, (_, i) => `s${i}`) }, "t0ken", 413],
  ])("refuses %s with a JSON error", async (_what, body, token, status) => {
    const res = await call(body, token);
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  });
});

describe("fault injection", () => {
  const admin = (body: unknown): Promise<Response> =>
    fetch(`${regional.url}/admin/faults`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  it("adds latency", async () => {
    expect((await admin({ latencyMs: 200 })).status).toBe(200);
    const t0 = performance.now();
    expect((await call({ region: "r", skus: ["a"] })).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
  });

  it("fails every call at errorRate 1, answers 503 during an outage, and sends undecodable bodies on demand", async () => {
    await admin({ errorRate: 1 });
    expect((await call({ region: "r", skus: ["a"] })).status).toBe(500);
    await admin({ errorRate: 0, outage: true });
    expect((await call({ region: "r", skus: ["a"] })).status).toBe(503);
    await admin({ outage: false, corruptBody: true });
    const res = await call({ region: "r", skus: ["a"] });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(() => packr.unpack(bytes)).toThrow();
  });

  it("validates fault updates and resets them", async () => {
    const bad = await admin({ errorRate: 2 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/errorRate/);
    await admin({ outage: true });
    await fetch(`${regional.url}/admin/faults/reset`, { method: "POST" });
    expect(await (await fetch(`${regional.url}/admin/faults`)).json()).toEqual({ latencyMs: 0, errorRate: 0, outage: false, corruptBody: false });
  });
});

describe("operations", () => {
  it("counts requests by status and SKUs asked for", async () => {
    const text0 = await (await fetch(`${regional.url}/metrics`)).text();
    const skus0 = Number(/^regional_skus_total (\d+)$/m.exec(text0)![1]);
    await call({ region: "r", skus: ["a", "b", "c"] });
    const text = await (await fetch(`${regional.url}/metrics`)).text();
    expect(Number(/^regional_skus_total (\d+)$/m.exec(text)![1])).toBe(skus0 + 3);
    expect(text).toMatch(/^regional_requests_total\{status="200"\} \d+$/m);
  });

  it("answers 503 quickly when its Redis is down", async () => {
    const r2 = await startRedis();
    const other = await startRegional({ redisUrl: r2.url });
    await r2.stop();
    const t0 = performance.now();
    const res = await fetch(`${other.url}/v1/records`, { method: "POST", headers: { "Content-Type": "application/msgpack" }, body: new Uint8Array(packr.pack({ region: "r", skus: ["a"] })) });
    expect(res.status).toBe(503);
    expect(performance.now() - t0).toBeLessThan(2_000);
    await other.close();
  });
});

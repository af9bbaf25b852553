/**
 * POST /v1/prewarm and reads of the warmed keys, end to end in workerd:
 * real Redis, real go-stock.wasm, the Cache API.
 */
import { SELF } from "cloudflare:test";
import { pack } from "msgpackr";
import { describe, expect, it } from "vitest";
import { encodeRecord } from "../../records/encode";
import { getSku, prewarmRequest, priceRecord, stockRecord, uniqueSku } from "./fixtures";
import { metric } from "./parts";
import { redisGetCalls, seed, withRedis } from "./redis";

interface Aggregate {
  sku: string;
  region: string;
  stock: { available: number; status: string; maxOrderQty: number };
  price: { amount: number; list: number; currency: string; promoId: string | null };
  next: { at: number; amount: number; promoId: string | null } | null;
  source: string;
  computedAt: number;
  validUntil: number;
}

async function seeded(n: number, label = "p"): Promise<string[]> {
  const skus = Array.from({ length: n }, () => uniqueSku(label));
  for (const sku of skus) await seed(sku, stockRecord(sku), priceRecord(sku));
  return skus;
}

describe("POST /v1/prewarm", () => {
  it("warms every SKU of a batch and reads them back from the cache without touching Redis", async () => {
    const skus = await seeded(5);
    const res = await prewarmRequest({ skus, jobId: "job-1" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ jobId: "job-1", region: "cn-east", warmed: 5, fromEdge: 5, fromRegional: 0, failed: [] });
    expect(typeof body["durationMs"]).toBe("number");

    const getsBefore = await redisGetCalls();
    for (const sku of skus) {
      const r = await getSku(sku);
      expect(r.status).toBe(200);
      expect(r.headers.get("X-Cache")).toBe("HIT");
      const agg = (await r.json()) as Aggregate;
      expect(agg).toMatchObject({ sku, region: "cn-east", source: "edge", price: { amount: 10_000, list: 10_000, currency: "CNY", promoId: null } });
      expect(agg.stock).toEqual({ available: 50, status: "in_stock", maxOrderQty: 50 });
    }
    expect(await redisGetCalls()).toBe(getsBefore);
  });

  it("reads the whole batch from Redis in one round trip, and tells the node in one more", async () => {
    const skus = await seeded(20);
    const before = await redisGetCalls();
    const trips = await metric("edge_redis_roundtrips_total");
    const res = await prewarmRequest({ skus });
    expect(res.status).toBe(200);
    // two GETs per SKU (stock, price), no more: nothing is read twice.
    expect((await redisGetCalls()) - before).toBe(40);
    // one read of every record, one write to the node's change log
    expect(await metric("edge_redis_roundtrips_total")).toBe(trips + 2);
  });

  it("accepts a MessagePack body", async () => {
    const [sku] = await seeded(1);
    const res = await prewarmRequest(pack({ skus: [sku], ttl: 10 }), { contentType: "application/msgpack" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ warmed: 1, failed: [] });
    const r = await getSku(sku!);
    expect(r.headers.get("X-Cache")).toBe("HIT");
    expect(Number(/max-age=(\d+)/.exec(r.headers.get("Cache-Control") ?? "")?.[1])).toBeLessThanOrEqual(10);
  });

  it("is idempotent: the same batch twice warms the same keys", async () => {
    const skus = await seeded(3);
    const first = (await (await prewarmRequest({ skus, jobId: "same" })).json()) as Record<string, unknown>;
    const second = (await (await prewarmRequest({ skus, jobId: "same" })).json()) as Record<string, unknown>;
    expect(second["warmed"]).toBe(first["warmed"]);
    expect(second["failed"]).toEqual([]);
  });

  it("reports a corrupt Redis value as invalid_record and still warms the rest of the batch", async () => {
    const good = await seeded(3);
    const garbage = uniqueSku("garbage");
    await seed(garbage, new Uint8Array([0xc1, 0xff, 0x00]), priceRecord(garbage));
    const wrongSku = uniqueSku("mismatch");
    await seed(wrongSku, stockRecord("someone-else"), priceRecord(wrongSku));
    const floatPrice = uniqueSku("float");
    await seed(floatPrice, stockRecord(floatPrice), { ...priceRecord(floatPrice), base: 99.5 });
    const wrongType = uniqueSku("wrongtype");
    await seed(wrongType, null, priceRecord(wrongType));
    await withRedis((r) => r.hset(`sku:${wrongType}:stock`, "a", "b"));

    const res = await prewarmRequest({ skus: [...good, garbage, wrongSku, floatPrice, wrongType] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { warmed: number; failed: { sku: string; code: string }[] };
    expect(body.warmed).toBe(3);
    expect(body.failed).toEqual(
      expect.arrayContaining([
        { sku: garbage, code: "invalid_record" },
        { sku: wrongSku, code: "invalid_record" },
        { sku: floatPrice, code: "invalid_record" },
        { sku: wrongType, code: "invalid_record" },
      ]),
    );
    expect(body.failed).toHaveLength(4);
    for (const sku of good) expect((await getSku(sku)).headers.get("X-Cache")).toBe("HIT");
    // The corrupt SKU is never served as if it were fine.
    const bad = await getSku(garbage);
    expect(bad.status).toBe(502);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_record" } });
  });

  it("replaces the aggregate of a SKU whose records were deleted with a not_found: it is not served warm with its old price", async () => {
    const [sku] = await seeded(1, "gone");
    expect(await (await prewarmRequest({ skus: [sku], ttl: 3600 })).json()).toMatchObject({ warmed: 1 });
    expect((await getSku(sku!)).headers.get("X-Cache")).toBe("HIT");
    await withRedis((r) => r.del(`sku:${sku}:price`)); // the region lacks it too
    expect(await (await prewarmRequest({ skus: [sku], ttl: 3600 })).json()).toMatchObject({ warmed: 0, failed: [{ sku, code: "not_found" }] });
    const res = await getSku(sku!);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
  });

  it("reports unknown and badly named SKUs per SKU without failing the batch", async () => {
    const [good] = await seeded(1);
    const missing = uniqueSku("missing");
    const res = await prewarmRequest({ skus: [good, missing, "bad id!", "-leading-dash"] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { warmed: number; failed: { sku: string; code: string }[] };
    expect(body.warmed).toBe(1);
    expect(body.failed).toEqual(
      expect.arrayContaining([
        { sku: missing, code: "not_found" },
        { sku: "bad id!", code: "invalid_sku" },
        { sku: "-leading-dash", code: "invalid_sku" },
      ]),
    );
  });

  it.each([
    ["no Authorization header", null],
    ["a wrong token", "not-the-token"],
  ])("refuses a request with %s (401, JSON error)", async (_what, token) => {
    const res = await prewarmRequest({ skus: ["a"] }, { token });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("refuses a batch of more than 1,000 SKUs with 413", async () => {
    const skus = Array.from({ length: 1001 }, (_, i) => `s${i}`);
    const res = await prewarmRequest({ skus });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "payload_too_large" } });
  });

  it("refuses a body over the size limit with 413", async () => {
    const res = await prewarmRequest(JSON.stringify({ skus: ["a"], pad: "x".repeat(300 * 1024) }));
    expect(res.status).toBe(413);
  });

  it("spreads the expiry of a batch's keys over ttlJitter, the same offset for a SKU each time", async () => {
    const skus = await seeded(60, "jitter");
    const validity = async (): Promise<Map<string, number>> => {
      const m = new Map<string, number>();
      for (const sku of skus) {
        const a = (await (await getSku(sku)).json()) as Aggregate;
        m.set(sku, a.validUntil - a.computedAt);
      }
      return m;
    };
    expect(await (await prewarmRequest({ skus, ttl: 600, ttlJitter: 300 })).json()).toMatchObject({ warmed: 60 });
    const first = await validity();
    const lives = [...first.values()];
    expect(Math.min(...lives)).toBeGreaterThanOrEqual(300_000);
    expect(Math.max(...lives)).toBeLessThanOrEqual(600_000);
    // 60 keys over 300 s: not all in the same second (evenly spread, ~50 distinct seconds).
    expect(new Set(lives.map((l) => Math.floor(l / 1000))).size).toBeGreaterThan(30);
    await prewarmRequest({ skus, ttl: 600, ttlJitter: 300 });
    expect(await validity()).toEqual(first);
  });

  it.each([
    ["malformed JSON", "{skus: [", "application/json", 400, "bad_request"],
    ["skus not an array", JSON.stringify({ skus: "a,b" }), "application/json", 400, "bad_request"],
    ["a non-string SKU", JSON.stringify({ skus: ["a", 7] }), "application/json", 400, "bad_request"],
    ["a bad ttl", JSON.stringify({ skus: ["a"], ttl: -5 }), "application/json", 400, "bad_request"],
    ["a ttlJitter not below the ttl", JSON.stringify({ skus: ["a"], ttl: 30, ttlJitter: 30 }), "application/json", 400, "bad_request"],
    ["a negative ttlJitter", JSON.stringify({ skus: ["a"], ttlJitter: -1 }), "application/json", 400, "bad_request"],
    ["an empty batch", JSON.stringify({ skus: [] }), "application/json", 400, "bad_request"],
    ["a text/plain body", JSON.stringify({ skus: ["a"] }), "text/plain", 415, "unsupported_media_type"],
  ])("answers %s with a precise JSON error", async (_what, body, contentType, status, code) => {
    const res = await prewarmRequest(body, { contentType });
    expect(res.status).toBe(status);
    const err = (await res.json()) as { error: { code: string; message: string } };
    expect(err.error.code).toBe(code);
    expect(err.error.message.length).toBeGreaterThan(5);
  });
});

describe("tags (SPEC §9)", () => {
  it("answers an aggregate's tags in Surrogate-Key, sorted: its SKU, its region's promotions not ended, its eligible warehouses, the prewarm's tags; on the warmed fast path too", async () => {
    const sku = uniqueSku("tagged");
    const now = Date.now();
    const warehouses = [
      { id: "sh-1", regions: ["cn-east"], onHand: 5, reserved: 0 },
      { id: "bj-1", regions: ["cn-north"], onHand: 5, reserved: 0 },
      { id: "hz-2", regions: ["cn-east", "cn-north"], onHand: 0, reserved: 0 },
    ];
    const promos = [
      { id: "now", kind: "amount" as const, value: 100, startsAt: now - 60_000, endsAt: now + 600_000 },
      { id: "later", kind: "amount" as const, value: 200, startsAt: now + 300_000, endsAt: now + 900_000, regions: ["cn-east"] },
      { id: "ended", kind: "amount" as const, value: 300, startsAt: now - 600_000, endsAt: now - 60_000 },
      { id: "north", kind: "amount" as const, value: 400, startsAt: now - 60_000, endsAt: now + 600_000, regions: ["cn-north"] },
    ];
    await seed(sku, stockRecord(sku, 5, { warehouses }), priceRecord(sku, 10_000, promos));
    const warm = await prewarmRequest({ skus: [sku], tags: ["plan:singles-day", "label:hot"] });
    expect(await warm.json()).toMatchObject({ warmed: 1 });
    const hit = await getSku(sku);
    expect(hit.headers.get("X-Cache")).toBe("HIT");
    expect(hit.headers.get("Surrogate-Key")).toBe(`label:hot plan:singles-day promo:later promo:now sku:${sku} wh:hz-2 wh:sh-1`);
    // Another region's aggregate, computed by a read: its own promotions and warehouses, no prewarm's tags.
    const north = await getSku(sku, "?region=cn-north");
    expect(north.headers.get("X-Cache")).toBe("MISS");
    expect(north.headers.get("Surrogate-Key")).toBe(`promo:north promo:now sku:${sku} wh:bj-1 wh:hz-2`);
  });

  it("refuses a prewarm whose tags break the grammar or are too many, naming the tag, and warms nothing", async () => {
    const [sku] = await seeded(1, "badtag");
    for (const [tags, message] of [
      [["nope:x"], /tags\[0\].*kind:value/],
      [["plan:has space"], /tags\[0\].*printable ASCII/],
      [["plan:ok", `label:${"x".repeat(129)}`], /tags\[1\]/],
      ["plan:x", /must be an array/],
      [Array.from({ length: 17 }, (_, i) => `label:l${i}`), /at most 16 tags/],
    ] as const) {
      const res = await prewarmRequest({ skus: [sku], tags });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "bad_request", message: expect.stringMatching(message) });
    }
    expect((await getSku(sku!)).headers.get("X-Cache")).toBe("MISS");
  });
});

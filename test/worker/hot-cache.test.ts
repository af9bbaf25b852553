/**
 * The isolate's hot cache in front of the Cache API: an LRU bounded by bytes,
 * answering warmed keys from memory, with the Cache API copy written behind.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../worker/config";
import { entryBytes, HotCache } from "../../worker/cache/hot-cache";
import { getSku, prewarmRequest, priceRecord, sleep, stockRecord, uniqueSku } from "./fixtures";
import { metric } from "./parts";
import { seed } from "./redis";
import type { CachedAggregate } from "../../worker/cache/entry";

function entry(json: string): CachedAggregate {
  return { segments: [{ json, computedAt: 0, validUntil: 1, nextAt: null, tags: "", rules: "" }], basis: 0 };
}

describe("HotCache", () => {
  it("evicts the least recently used entries once past its byte budget", () => {
    const one = entryBytes("a", entry("x".repeat(100)));
    const hot = new HotCache(one * 3);
    for (const k of ["a", "b", "c"]) expect(hot.set(k, entry("x".repeat(100)))).toBe(true);
    hot.get("a"); // a becomes the most recent; b is now the oldest
    hot.set("d", entry("x".repeat(100)));
    expect(["a", "b", "c", "d"].map((k) => hot.get(k) !== undefined)).toEqual([true, false, true, true]);
    expect(hot.evictions).toBe(1);
    expect(hot.bytes).toBe(one * 3);
  });

  it("keeps nothing when its budget is 0 or the entry alone is larger than the budget", () => {
    expect(new HotCache(0).set("a", entry("{}"))).toBe(false);
    const hot = new HotCache(200);
    expect(hot.set("big", entry("x".repeat(500)))).toBe(false);
    expect(hot.size).toBe(0);
    expect(hot.bytes).toBe(0);
  });

  it("tells whether an entry is still the one held, after a rewrite or a delete", () => {
    const hot = new HotCache(10_000);
    const first = entry("{1}");
    hot.set("k", first);
    expect(hot.holds("k", first)).toBe(true);
    hot.set("k", entry("{2}"));
    expect(hot.holds("k", first)).toBe(false);
    expect(hot.delete("k")).toBe(true);
    expect(hot.delete("k")).toBe(false);
    expect(hot.bytes).toBe(0);
  });
});

describe("reads of warmed keys", () => {
  it("are answered from the isolate's memory, with no store read", async () => {
    const sku = uniqueSku("hot");
    await seed(sku, stockRecord(sku), priceRecord(sku));
    await prewarmRequest({ skus: [sku] });
    const memory = await metric('edge_cache_layer_hits_total{layer="memory"}');
    const store = await metric('edge_cache_layer_hits_total{layer="store"}');
    const res = await getSku(sku);
    expect(res.headers.get("X-Cache")).toBe("HIT");
    expect(await metric('edge_cache_layer_hits_total{layer="memory"}')).toBe(memory + 1);
    expect(await metric('edge_cache_layer_hits_total{layer="store"}')).toBe(store);
  });

  it("are in the shared store once the prewarm has answered, every one of them", async () => {
    const skus = Array.from({ length: 20 }, () => uniqueSku("stored"));
    for (const sku of skus) await seed(sku, stockRecord(sku), priceRecord(sku));
    const written = await metric('edge_cache_writes_total{result="ok"}');
    const res = await prewarmRequest({ skus });
    expect(((await res.json()) as { warmed: number }).warmed).toBe(20);
    expect(await metric('edge_cache_writes_total{result="ok"}')).toBe(written + 20);
    expect(await metric('edge_cache_writes_total{result="error"}')).toBe(0);
  });

  it("computed read-through are written behind to the store", async () => {
    const sku = uniqueSku("behind");
    await seed(sku, stockRecord(sku), priceRecord(sku));
    const written = await metric('edge_cache_writes_total{result="ok"}');
    expect((await getSku(sku)).headers.get("X-Cache")).toBe("MISS");
    let now = written;
    for (let i = 0; i < 50 && now < written + 1; i++) {
      await sleep(50);
      now = await metric('edge_cache_writes_total{result="ok"}');
    }
    expect(now).toBe(written + 1);
  });
});

describe("the warmed read's fast path", () => {
  it("gives the same answer as the router, 304 included", async () => {
    const sku = uniqueSku("fast");
    await seed(sku, stockRecord(sku), priceRecord(sku));
    await prewarmRequest({ skus: [sku] });
    const fast = await getSku(sku); // plain GET /v1/skus/:sku: the fast path
    const routed = await SELF.fetch(`https://edge.test/v1/skus/${sku}?region=cn-east&via=router`); // an extra parameter: the router
    expect(fast.status).toBe(200);
    expect(routed.status).toBe(200);
    expect(await fast.text()).toBe(await routed.text());
    for (const h of ["X-Cache", "ETag", "Content-Type", "Cache-Control"]) expect(fast.headers.get(h), h).toBe(routed.headers.get(h));
    const etag = fast.headers.get("ETag")!;
    const again = await SELF.fetch(`https://edge.test/v1/skus/${sku}`, { headers: { "If-None-Match": etag } });
    expect(again.status).toBe(304);
    expect(again.headers.get("X-Cache")).toBe("HIT");
  });
});

describe("hot cache configuration", () => {
  const base = { EDGE_REGION: "cn-east" };
  it("defaults to 48 MiB in front of the Cache API, and reads HOT_CACHE_MAX_BYTES and AGGREGATE_STORE", () => {
    expect(parseConfig(base)).toMatchObject({ hotCacheMaxBytes: 48 * 1024 * 1024, aggregateStore: "cache-api" });
    expect(parseConfig({ ...base, HOT_CACHE_MAX_BYTES: "0" })).toMatchObject({ hotCacheMaxBytes: 0 });
    expect(parseConfig({ ...base, AGGREGATE_STORE: "redis" })).toMatchObject({ aggregateStore: "redis" });
    expect(parseConfig(base).edgeRegions).toBeNull();
    expect(parseConfig({ ...base, EDGE_REGIONS: " cn-east, cn-north " }).edgeRegions).toEqual(["cn-east", "cn-north"]);
  });
  const bad: [Record<string, string>, RegExp][] = [
    [{ HOT_CACHE_MAX_BYTES: "-1" }, /HOT_CACHE_MAX_BYTES must be an integer in 0\.\.100663296, got "-1"/],
    [{ HOT_CACHE_MAX_BYTES: "lots" }, /HOT_CACHE_MAX_BYTES must be an integer/],
    [{ AGGREGATE_STORE: "memory" }, /AGGREGATE_STORE must be redis or cache-api, got "memory"/],
    [{ EDGE_REGIONS: "cn-north,us-west" }, /EDGE_REGIONS must include EDGE_REGION \(cn-east\)/],
    [{ EDGE_REGIONS: "cn-east,no spaces" }, /EDGE_REGIONS must be a comma-separated list of region names/],
  ];
  for (const [vars, message] of bad) {
    it(`refuses ${JSON.stringify(vars)} with a message naming the variable`, () => {
      expect(() => parseConfig({ ...base, ...vars })).toThrow(message);
    });
  }
});

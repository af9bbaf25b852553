/**
 * The edge keeps answering correctly when its Redis or the region fails or
 * slows: regional fallback with refill, timeouts, the circuit breaker,
 * stale-if-error, 503 only when nothing can be served, coalescing, purge.
 * Real edge Redis (stopped and restarted), real regional aggregator over HTTP.
 */
import { SELF } from "cloudflare:test";
import { afterEach, describe, expect, inject, it } from "vitest";
import { encodeRecord } from "../../records/encode";
import { metrics } from "../../worker/metrics";
import { getSku, prewarmRequest, priceRecord, purgeRequest, sleep, stockRecord, uniqueSku } from "./fixtures";
import { edgeRedis, metric, regional } from "./parts";
import { seed, seedRegional, withRedis } from "./redis";

interface Aggregate {
  sku: string;
  source: string;
  price: { amount: number };
  computedAt: number;
  validUntil: number;
}

async function regionalOnly(label = "reg", base = 7_000): Promise<string> {
  const sku = uniqueSku(label);
  await seedRegional(sku, stockRecord(sku), priceRecord(sku, base));
  return sku;
}

/** Waits out the half-open delay and lets one good call close the breaker. */
async function closeBreaker(): Promise<void> {
  await regional.resetFaults();
  const probe = await regionalOnly("probe");
  for (let i = 0; i < 30; i++) {
    const health = (await (await SELF.fetch("https://edge.test/healthz")).json()) as { regional: { breaker: string } };
    if (health.regional.breaker === "closed") return;
    await getSku(probe);
    await sleep(100);
  }
  throw new Error("breaker did not close");
}

afterEach(async () => {
  await edgeRedis.start();
  await closeBreaker();
});

describe("regional fallback", () => {
  it("keeps the region's copy beside the feed's records, never in them: the feed's record keeps its bytes and gets no TTL", async () => {
    const sku = uniqueSku("clobber");
    // The feed wrote a newer stock record at the edge, with no TTL; the price is missing there.
    const feedStock = encodeRecord(stockRecord(sku, 99, { updatedAt: 2_000 }));
    await seed(sku, feedStock, null);
    await seedRegional(sku, stockRecord(sku, 5, { updatedAt: 1_000 }), priceRecord(sku, 7_000));
    const res = await getSku(sku);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ source: "regional", stock: { available: 5 } });
    // the copy is kept after the answer (in waitUntil): wait for it
    let copyTtl = -2;
    for (let i = 0; i < 40 && copyTtl < 0; i++, await sleep(25)) copyTtl = await withRedis((r) => r.ttl(`sku:${sku}:regional`));
    expect(copyTtl).toBeGreaterThan(0);
    expect(copyTtl).toBeLessThanOrEqual(60);
    const [stockBytes, stockTtl, price] = await withRedis(async (r) => [await r.getBuffer(`sku:${sku}:stock`), await r.ttl(`sku:${sku}:stock`), await r.exists(`sku:${sku}:price`)] as const);
    expect(Buffer.compare(stockBytes!, Buffer.from(feedStock))).toBe(0);
    expect(stockTtl).toBe(-1);
    expect(price).toBe(0);
  });

  it("reads what the edge lacks from the region, serves it as source regional, and keeps the region's copy for the next miss (still regional)", async () => {
    const sku = await regionalOnly();
    const res = await getSku(sku);
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Cache")).toBe("MISS");
    expect(await res.json()).toMatchObject({ sku, source: "regional", price: { amount: 7_000 } });
    // The copy is kept after the answer (waitUntil): poll the edge Redis for it.
    let ttl = -2;
    for (let i = 0; i < 40 && ttl < 0; i++, await sleep(25)) ttl = await withRedis((r) => r.ttl(`sku:${sku}:regional`));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
    expect(await withRedis((r) => r.exists(`sku:${sku}:stock`, `sku:${sku}:price`))).toBe(0);
    // A miss of another aggregate of the SKU (another region) computes from the copy: no regional call, and still `regional`.
    const before = await regional.counters();
    const again = await getSku(sku, "?region=cn-north");
    expect(again.headers.get("X-Cache")).toBe("MISS");
    expect(await again.json()).toMatchObject({ sku, region: "cn-north", source: "regional", price: { amount: 7_000 } });
    expect((await regional.counters()).requests).toBe(before.requests);
  });

  it("drops the region's copy with a purge: a price fixed at the region is served, as regional, right after the purge", async () => {
    const sku = await regionalOnly("fixed", 7_000);
    expect(await (await getSku(sku)).json()).toMatchObject({ source: "regional", price: { amount: 7_000 } });
    for (let i = 0; i < 40 && (await withRedis((r) => r.exists(`sku:${sku}:regional`))) === 0; i++) await sleep(25);
    await seedRegional(sku, stockRecord(sku), priceRecord(sku, 6_500));
    expect((await purgeRequest({ skus: [sku] })).status).toBe(200);
    expect(await withRedis((r) => r.exists(`sku:${sku}:regional`))).toBe(0);
    const res = await getSku(sku);
    expect(res.headers.get("X-Cache")).toBe("MISS");
    expect(await res.json()).toMatchObject({ source: "regional", price: { amount: 6_500 } });
  });

  it("prewarms a batch from edge and region in one regional call and counts each source", async () => {
    const local = uniqueSku("local");
    await seed(local, stockRecord(local), priceRecord(local));
    const remote = [await regionalOnly(), await regionalOnly()];
    const before = await regional.counters();
    const res = await prewarmRequest({ skus: [local, ...remote] });
    expect(await res.json()).toMatchObject({ warmed: 3, fromEdge: 1, fromRegional: 2, failed: [] });
    const after = await regional.counters();
    expect(after.requests - before.requests).toBe(1);
    expect(after.skus - before.skus).toBe(2);
  });

  it("gives invalid_record for a corrupt regional record and still warms the rest", async () => {
    const good = await regionalOnly();
    const bad = uniqueSku("badreg");
    await seedRegional(bad, new Uint8Array([0x93, 0x01]), priceRecord(bad));
    const res = await prewarmRequest({ skus: [good, bad] });
    expect(await res.json()).toMatchObject({ warmed: 1, fromRegional: 1, failed: [{ sku: bad, code: "invalid_record" }] });
  });

  it("treats an answer that does not decode as a failure of the whole call, not a crash", async () => {
    const sku = await regionalOnly();
    await regional.setFaults({ corruptBody: true });
    const errors = await metric('edge_regional_requests_total{outcome="error"}');
    const res = await prewarmRequest({ skus: [sku] });
    expect(await res.json()).toMatchObject({ warmed: 0, failed: [{ sku, code: "regional_unavailable" }] });
    expect(await metric('edge_regional_requests_total{outcome="error"}')).toBe(errors + 1);
  });

  it("gives up on a slow region after REGIONAL_TIMEOUT_MS (400 ms in this pool; the 150 ms default is tested on the node)", async () => {
    const sku = await regionalOnly();
    await regional.setFaults({ latencyMs: 1_000 });
    const timeouts = await metric('edge_regional_requests_total{outcome="timeout"}');
    const started = Date.now();
    const res = await getSku(sku);
    const took = Date.now() - started;
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await res.json()).toMatchObject({ error: { code: "regional_unavailable" } });
    expect(took).toBeLessThan(900);
    expect(await metric('edge_regional_requests_total{outcome="timeout"}')).toBe(timeouts + 1);
  });
});

describe("negative caching", () => {
  it("caches not_found for NEGATIVE_TTL_SECONDS: reads of an unknown SKU spread over a second cost one computation and one regional request", async () => {
    const sku = uniqueSku("unknown");
    // This isolate's own counts: the reference aggregator's counters are shared with whatever else the pool runs.
    const calls = (): number => ["ok", "error", "timeout", "rejected"].reduce((n, outcome) => n + metrics.regionalRequests.get({ outcome }), 0);
    const before = calls();
    const computations = metrics.computations.get({ trigger: "read" });
    for (let i = 0; i < 6; i++) {
      const res = await getSku(sku);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
      await sleep(150); // past the 100 ms in which a settled computation still answers newcomers
    }
    expect(calls() - before).toBe(1);
    expect(metrics.computations.get({ trigger: "read" })).toBe(computations + 1);
  });

  it("is cleared by a prewarm of the SKU and by a purge", async () => {
    const sku = uniqueSku("later");
    expect((await getSku(sku)).status).toBe(404);
    await seed(sku, stockRecord(sku), priceRecord(sku, 4_400));
    expect((await getSku(sku)).status).toBe(404); // still cached
    await prewarmRequest({ skus: [sku] });
    expect(await (await getSku(sku)).json()).toMatchObject({ price: { amount: 4_400 } });

    const other = uniqueSku("purged");
    expect((await getSku(other)).status).toBe(404);
    await seed(other, stockRecord(other), priceRecord(other, 4_500));
    const purge = await SELF.fetch("https://edge.test/v1/purge", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${inject("prewarmToken")}` },
      body: JSON.stringify({ skus: [other] }),
    });
    expect(purge.status).toBe(200);
    expect(await (await getSku(other)).json()).toMatchObject({ price: { amount: 4_500 } });
  });
});

describe("circuit breaker", () => {
  it("opens after 3 consecutive failures, fails fast without calling the region, half-opens, and closes again", async () => {
    await regional.setFaults({ errorRate: 1 });
    const skus = [await regionalOnly(), await regionalOnly(), await regionalOnly(), await regionalOnly()];
    const opened = Date.now();
    for (const sku of skus.slice(0, 3)) expect((await getSku(sku)).status).toBe(503);
    const health = (await (await SELF.fetch("https://edge.test/healthz")).json()) as { regional: { breaker: string } };
    expect(health.regional.breaker).toBe("open");
    expect(await metric("edge_regional_breaker_state")).toBe(2);
    const timeToOpen = Date.now() - opened;
    console.log(`breaker opened after 3 failed calls in ${timeToOpen} ms`);

    const before = await regional.counters();
    const rejected = await metric('edge_regional_requests_total{outcome="rejected"}');
    const fast = await getSku(skus[3]!);
    expect(fast.status).toBe(503);
    expect(fast.headers.get("Retry-After")).toBe("1"); // REGIONAL_BREAKER_HALF_OPEN_MS = 1000 in tests
    expect(await regional.counters()).toEqual(before); // nothing was sent
    expect(await metric('edge_regional_requests_total{outcome="rejected"}')).toBe(rejected + 1);

    await regional.resetFaults();
    await sleep(1_050);
    // half-open as of now, before any call has let cockatiel notice
    const waiting = (await (await SELF.fetch("https://edge.test/healthz")).json()) as { regional: { breaker: string } };
    expect(waiting.regional.breaker).toBe("half-open");
    expect(await metric("edge_regional_breaker_state")).toBe(1);
    const probe = await getSku(skus[3]!);
    expect(probe.status).toBe(200);
    expect(await metric("edge_regional_breaker_state")).toBe(0);
    expect(await metric('edge_regional_breaker_transitions_total{to="half-open"}')).toBeGreaterThanOrEqual(1);
  });

  it("re-opens when the half-open probe fails", async () => {
    await regional.setFaults({ outage: true });
    for (let i = 0; i < 3; i++) await getSku(await regionalOnly());
    expect(await metric("edge_regional_breaker_state")).toBe(2);
    await sleep(1_050);
    expect((await getSku(await regionalOnly())).status).toBe(503); // the probe, failing
    expect(await metric("edge_regional_breaker_state")).toBe(2);
  });
});

describe("edge Redis down", () => {
  it("falls back to the region for every SKU when the edge Redis is stopped mid-run", async () => {
    const sku = uniqueSku("both");
    await seed(sku, stockRecord(sku), priceRecord(sku, 5_000));
    await seedRegional(sku, stockRecord(sku), priceRecord(sku, 5_000));
    await edgeRedis.stop();
    const errors = await metric("edge_redis_errors_total");
    const res = await prewarmRequest({ skus: [sku] });
    expect(await res.json()).toMatchObject({ warmed: 1, fromEdge: 0, fromRegional: 1 });
    expect(await metric("edge_redis_errors_total")).toBeGreaterThan(errors);
    const health = await SELF.fetch("https://edge.test/healthz");
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: "degraded", edgeRedis: { ok: false } });
  });

  it("serves a stale aggregate when neither Redis nor the region can answer (stale-if-error)", async () => {
    const sku = uniqueSku("sie");
    await seed(sku, stockRecord(sku), priceRecord(sku, 3_000));
    await prewarmRequest({ skus: [sku], ttl: 1 });
    const warm = (await (await getSku(sku)).json()) as Aggregate;
    await sleep(warm.validUntil - Date.now() + 2_100); // past the stale-while-revalidate grace
    await edgeRedis.stop();
    await regional.setFaults({ outage: true });
    const [stale, miss] = [metrics.cacheLookups.get({ result: "stale" }), metrics.cacheLookups.get({ result: "miss" })];
    const res = await getSku(sku);
    expect(res.status).toBe(200);
    expect(res.headers.get("X-Cache")).toBe("STALE");
    expect(await res.json()).toMatchObject({ sku, price: { amount: 3_000 }, computedAt: warm.computedAt });
    // counted once, as what it was answered with (this isolate's counters: the node's live in the stopped Redis)
    expect(metrics.cacheLookups.get({ result: "stale" })).toBe(stale + 1);
    expect(metrics.cacheLookups.get({ result: "miss" })).toBe(miss);
  });

  it("answers 503 with Retry-After and a JSON error only when nothing stale exists", async () => {
    const sku = uniqueSku("nothing");
    await edgeRedis.stop();
    await regional.setFaults({ outage: true });
    const res = await getSku(sku);
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await res.json()).toMatchObject({ error: { code: "regional_unavailable" } });
  });
});

describe("coalescing", () => {
  it("computes a cold key once for 1,000 concurrent misses, with at most one regional request", async () => {
    const sku = await regionalOnly("stampede");
    const before = await regional.counters();
    // This isolate's own count: the node's totals in /metrics lag by a flush, and an earlier
    // test restarted the edge Redis that holds them.
    const computations = metrics.computations.get({ trigger: "read" });
    const responses = await Promise.all(Array.from({ length: 1000 }, () => getSku(sku)));
    const statuses = new Set(responses.map((r) => r.status));
    const bodies = await Promise.all(responses.map((r) => r.json() as Promise<Aggregate>));
    expect(statuses, JSON.stringify(bodies[0])).toEqual(new Set([200]));
    expect(new Set(bodies.map((b) => b.computedAt)).size).toBe(1);
    const after = await regional.counters();
    console.log(`1,000 concurrent misses: ${after.requests - before.requests} regional request(s)`);
    expect(after.requests - before.requests).toBeLessThanOrEqual(1);
    expect(metrics.computations.get({ trigger: "read" })).toBe(computations + 1);
  });
});

describe("POST /v1/purge", () => {
  it("removes warmed entries so the next read recomputes", async () => {
    const sku = uniqueSku("purge");
    await seed(sku, stockRecord(sku), priceRecord(sku));
    await prewarmRequest({ skus: [sku] });
    expect((await getSku(sku)).headers.get("X-Cache")).toBe("HIT");
    const res = await SELF.fetch("https://edge.test/v1/purge", {
      method: "POST",
      headers: { "Content-Type": "application/msgpack", Authorization: `Bearer ${(await import("vitest")).inject("prewarmToken")}` },
      body: encodeRecord({ skus: [sku, "never-cached"] }),
    });
    expect(res.status).toBe(200);
    // SPEC §9: how many aggregates it purged, in every region the node holds (none was named)
    expect(await res.json()).toEqual({ purged: 1, soft: false });
    expect((await getSku(sku)).headers.get("X-Cache")).toBe("MISS");
  });

  it("requires the token and valid SKU ids", async () => {
    const purge = (body: string, token?: string): Promise<Response> =>
      SELF.fetch("https://edge.test/v1/purge", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) },
        body,
      });
    expect((await purge('{"skus":["a"]}')).status).toBe(401);
    expect((await purge('{"skus":["a"]}', "wrong")).status).toBe(401);
    const bad = await purge('{"skus":["fine-1","bad id"]}', inject("prewarmToken"));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_sku", message: expect.stringContaining("skus[1]") } });
  });
});

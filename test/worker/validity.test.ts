/**
 * Validity of cached aggregates: TTL expiry, stale-while-revalidate, and
 * price changes inside a warmed entry's life served at the exact millisecond
 * without reading Redis or the region.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getSku, prewarmRequest, priceRecord, sleep, stockRecord, uniqueSku } from "./fixtures";
import { metric, regional } from "./parts";
import { redisGetCalls, seed, seedRegional, withRedis } from "./redis";

interface Aggregate {
  price: { amount: number; promoId: string | null };
  next: { at: number; amount: number; promoId: string | null } | null;
  source: string;
  computedAt: number;
  validUntil: number;
}

async function warmed(ttl: number, promotions: Parameters<typeof priceRecord>[2] = []): Promise<string> {
  const sku = uniqueSku("v");
  await seed(sku, stockRecord(sku), priceRecord(sku, 10_000, promotions));
  const res = await prewarmRequest({ skus: [sku], ttl });
  expect(await res.json()).toMatchObject({ warmed: 1 });
  return sku;
}

describe("TTL expiry", () => {
  it("serves an entry whose TTL ran out as STALE while it refreshes it in the background", async () => {
    const sku = await warmed(1);
    const first = (await (await getSku(sku)).json()) as Aggregate;
    await sleep(first.validUntil - Date.now() + 20);
    const stale = await getSku(sku);
    expect(stale.headers.get("X-Cache")).toBe("STALE");
    expect(stale.headers.get("Cache-Control")).toBe("public, max-age=0");
    expect(((await stale.json()) as Aggregate).computedAt).toBe(first.computedAt);
    // The background refresh has stored a new entry: the next read is a HIT on newer data.
    let after: Response | undefined;
    for (let i = 0; i < 20; i++) {
      after = await getSku(sku);
      if (after.headers.get("X-Cache") === "HIT") break;
      await sleep(25);
    }
    expect(after!.headers.get("X-Cache")).toBe("HIT");
    expect(((await after!.json()) as Aggregate).computedAt).toBeGreaterThan(first.computedAt);
  });

  it("recomputes (MISS) once the stale grace is over", async () => {
    const sku = await warmed(1);
    const first = (await (await getSku(sku)).json()) as Aggregate;
    await sleep(first.validUntil - Date.now() + 2_100); // STALE_WHILE_REVALIDATE_SECONDS = 2 in tests
    const later = await getSku(sku);
    expect(later.headers.get("X-Cache")).toBe("MISS");
    expect(((await later.json()) as Aggregate).computedAt).toBeGreaterThan(first.computedAt);
  });
});

describe("price changes inside a warmed entry's life", () => {
  it("serves the flash price from T0 to the millisecond with no Redis, regional or rules work", async () => {
    const t0 = Date.now() + 1_500;
    const sku = await warmed(30, [{ id: "flash", kind: "fixed", value: 4_999, startsAt: t0, endsAt: t0 + 600_000 }]);
    const gets = await redisGetCalls();
    const regionalBefore = await regional.counters();
    const computations = await metric('edge_aggregate_computations_total{trigger="read"}');

    const before = await getSku(sku);
    const pre = (await before.json()) as Aggregate;
    expect(before.headers.get("X-Cache")).toBe("HIT");
    expect(pre.price).toMatchObject({ amount: 10_000, promoId: null });
    expect(pre.validUntil).toBe(t0);
    expect(pre.next).toEqual({ at: t0, amount: 4_999, promoId: "flash" });
    expect(Number(/max-age=(\d+)/.exec(before.headers.get("Cache-Control") ?? "")?.[1])).toBeLessThanOrEqual(2);

    await sleep(t0 - Date.now());
    const at = await getSku(sku);
    const flash = (await at.json()) as Aggregate;
    expect(at.headers.get("X-Cache")).toBe("HIT");
    expect(flash.price).toMatchObject({ amount: 4_999, promoId: "flash" });
    expect(flash.computedAt).toBe(t0); // the segment in force starts at T0 exactly
    expect(flash.validUntil).toBe(pre.computedAt + 30_000); // and lasts to the end of the prewarm's TTL, beyond T0 + 10 s
    expect(flash.validUntil).toBeGreaterThanOrEqual(t0 + 10_000);

    expect(await redisGetCalls()).toBe(gets);
    expect(await regional.counters()).toEqual(regionalBefore);
    expect(await metric('edge_aggregate_computations_total{trigger="read"}')).toBe(computations);
  });

  it("never serves a stale entry across a price change", async () => {
    // A price change after the TTL ran out: the stale entry would show the old price, so it is not served.
    const sku = uniqueSku("v");
    const change = Date.now() + 1_300;
    await seed(sku, stockRecord(sku), priceRecord(sku, 10_000, [{ id: "late", kind: "amount", value: 1_000, startsAt: change, endsAt: change + 60_000 }]));
    await prewarmRequest({ skus: [sku], ttl: 1 });
    await sleep(change - Date.now() + 20); // past validUntil and past the change, within the stale grace
    const res = await getSku(sku);
    expect(res.headers.get("X-Cache")).toBe("MISS");
    expect(((await res.json()) as Aggregate).price).toMatchObject({ amount: 9_000, promoId: "late" });
  });
});

describe("an answer that waits on a miss (SPEC §4: never a price whose time has passed)", () => {
  it("answers a multi-get's warm key with the price in force when the answer is built, not when the request began", async () => {
    const t0 = Date.now() + 250;
    const warm = await warmed(30, [{ id: "flash-wait", kind: "fixed", value: 4_999, startsAt: t0, endsAt: t0 + 600_000 }]);
    const slow = uniqueSku("wait");
    await seedRegional(slow, stockRecord(slow), priceRecord(slow, 3_000));
    await regional.setFaults({ latencyMs: 300 }); // the miss waits past T0 (the regional timeout in this pool is 400 ms)
    try {
      expect(Date.now()).toBeLessThan(t0);
      const res = await SELF.fetch(`https://edge.test/v1/skus?ids=${warm},${slow}`);
      const body = (await res.json()) as { aggregates: (Aggregate & { sku: string })[] };
      expect(Date.now()).toBeGreaterThan(t0);
      expect(body.aggregates.find((a) => a.sku === slow)).toMatchObject({ source: "regional", price: { amount: 3_000 } });
      expect(body.aggregates.find((a) => a.sku === warm)).toMatchObject({ price: { amount: 4_999, promoId: "flash-wait" }, computedAt: t0 });
    } finally {
      await regional.resetFaults();
    }
  });

  it("does not serve a stale entry as stale-if-error once a price change has passed during the regional wait", async () => {
    const sku = uniqueSku("sie-wait");
    const start = Date.now();
    const change = start + 3_300;
    await seedRegional(sku, stockRecord(sku), priceRecord(sku, 10_000, [{ id: "late", kind: "fixed", value: 5_000, startsAt: change, endsAt: change + 600_000 }]));
    expect(await (await prewarmRequest({ skus: [sku], ttl: 1 })).json()).toMatchObject({ fromRegional: 1 });
    // Past the revalidation grace (2 s in this pool), before the change: the read must ask the region again.
    await sleep(start + 3_100 - Date.now());
    await withRedis((r) => r.del(`sku:${sku}:regional`, `sku:${sku}:stock`, `sku:${sku}:price`)); // the edge holds nothing of it
    await regional.setFaults({ latencyMs: 1_000 }); // the region times out (400 ms), after the change
    try {
      expect(Date.now()).toBeLessThan(change);
      const res = await getSku(sku);
      expect(Date.now()).toBeGreaterThan(change);
      // The stale aggregate shows 10,000, no longer the price in force: nothing can be served.
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: "regional_unavailable" } });
    } finally {
      await regional.resetFaults();
    }
  });
});

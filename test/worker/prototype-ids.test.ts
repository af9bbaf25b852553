/**
 * SKU ids that are also names on Object.prototype (`constructor`, `toString`,
 * …) are SKUs like any other: unknown everywhere they are `not_found`, and
 * negatively cached, never a function read off a prototype. Real edge Redis,
 * real regional aggregator over HTTP.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { metrics } from "../../worker/metrics";
import { getSku, prewarmRequest, priceRecord, sleep, stockRecord } from "./fixtures";
import { seedRegional } from "./redis";

/** Valid SKU ids (SPEC §5) that name a member of Object.prototype; no test seeds them. */
const PROTOTYPE_IDS = ["constructor", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf", "propertyIsEnumerable"];
/** One more, which the region knows. */
const KNOWN = "toLocaleString";

/** This isolate's regional requests (the reference aggregator's counters are shared with whatever else the pool runs). */
const regionalCalls = (): number => ["ok", "error", "timeout", "rejected"].reduce((n, outcome) => n + metrics.regionalRequests.get({ outcome }), 0);

describe("SKU ids named like Object.prototype's members", () => {
  it.each(PROTOTYPE_IDS)("GET /v1/skus/%s, unknown to the edge and the region, answers 404 not_found and caches it", async (sku) => {
    const before = regionalCalls();
    for (let i = 0; i < 3; i++) {
      const res = await getSku(sku);
      expect([i, res.status]).toEqual([i, 404]);
      expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
      await sleep(150); // past the 100 ms in which a settled computation still answers newcomers
    }
    expect(regionalCalls() - before).toBe(1);
  });

  it("GET /v1/skus?ids= reports them not_found", async () => {
    const ids = ["toString", "valueOf", "hasOwnProperty"];
    const res = await SELF.fetch(`https://edge.test/v1/skus?ids=${ids.join(",")}&region=us-east`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { failed: unknown[] }).failed).toEqual(ids.map((sku) => ({ sku, code: "not_found" })));
  });

  it("POST /v1/prewarm warms such an id the region knows and reports the ones nobody knows not_found", async () => {
    await seedRegional(KNOWN, stockRecord(KNOWN, 4), priceRecord(KNOWN, 3_300));
    const res = await prewarmRequest({ skus: ["constructor", KNOWN, "isPrototypeOf"], region: "us-east" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ warmed: 1, fromRegional: 1, failed: [{ sku: "constructor", code: "not_found" }, { sku: "isPrototypeOf", code: "not_found" }] });
    expect(await (await getSku(KNOWN, "?region=us-east")).json()).toMatchObject({ sku: KNOWN, price: { amount: 3_300 } });
  });
});

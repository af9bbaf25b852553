/**
 * The shared conformance vectors (../shared/fixtures/conformance.json) through
 * the real go-stock.wasm, called from TypeScript inside workerd by the same
 * host the worker uses. The Go suite runs the same vectors natively.
 */
import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import { encodeRecord } from "../../records/encode";
import { rulesHost } from "../../worker/isolate";
import type { RulesInput } from "../../worker/rules/host";

interface Vector {
  name: string;
  sku: string;
  region: string;
  now: number;
  ttl: number;
  stock: unknown;
  price: unknown;
  expect: Record<string, unknown> & { error?: string };
}

const vectors = (JSON.parse(inject("conformance")) as { vectors: Vector[] }).vectors;

function inputOf(v: Vector): RulesInput {
  return {
    sku: v.sku,
    region: v.region,
    now: v.now,
    ttlMs: v.ttl * 1000,
    source: "edge",
    stock: v.stock === null ? null : encodeRecord(v.stock),
    price: v.price === null ? null : encodeRecord(v.price),
  };
}

describe("conformance vectors through go-stock.wasm", () => {
  it("has vectors to run", () => {
    expect(vectors.length).toBeGreaterThan(400);
  });

  // One batch holding every vector: the shape the worker uses.
  const results = rulesHost.run(vectors.map(inputOf));

  it.each(vectors.map((v, i) => [v.name, v, i] as const))("%s", (_name, v, i) => {
    const r = results[i]!;
    if (v.expect.error !== undefined) {
      expect(r.ok ? "ok" : r.code).toBe(v.expect.error);
      return;
    }
    if (!r.ok) throw new Error(`got ${r.code} (${r.detail}); want an aggregate`);
    expect(JSON.parse(r.json)).toEqual({ ...v.expect, source: "edge" });
    expect(r.validUntil).toBe(v.expect["validUntil"]);
    const next = v.expect["next"] as { at: number } | null;
    expect(r.nextAt).toBe(next === null ? null : next.at);
  });

  it("gives the same answer one SKU at a time as in one batch", () => {
    for (const [i, v] of vectors.slice(0, 40).entries()) {
      expect(rulesHost.run([inputOf(v)])[0]).toEqual(results[i]);
    }
  });

  // The host copies ASCII ids char by char and UTF-8-encodes the rest: a mixed
  // batch must reach the rules byte for byte (a record's sku must equal its key's).
  it("passes ASCII and non-ASCII SKU ids and regions through the frame intact", () => {
    const now = 1_763_970_000_000;
    const pairs = [
      ["plain-1", "cn-east"],
      ["tasse-\u00e9t\u00e9", "cn-east"],
      ["plain-2", "\u534e\u4e1c"],
      ["\u{1f600}-emoji", "\u534e\u5317"],
      ["plain-3", "us-west"],
    ] as const;
    const items: RulesInput[] = pairs.map(([sku, region]) => ({
      sku,
      region,
      now,
      ttlMs: 30_000,
      source: "edge",
      stock: encodeRecord({ sku, warehouses: [{ id: "w", regions: [region], onHand: 50, reserved: 0 }], updatedAt: now }),
      price: encodeRecord({ sku, currency: "EUR", base: 1000, updatedAt: now }),
    }));
    const out = rulesHost.run(items).map((r) => (r.ok ? (JSON.parse(r.json) as { sku: string; region: string; stock: { available: number } }) : r));
    expect(out).toEqual(pairs.map(([sku, region]) => expect.objectContaining({ sku, region, stock: expect.objectContaining({ available: 50 }) })));
  });
});

/**
 * The flash-sale catalogue: N SKUs with Zipf popularity (rank r is asked for
 * in proportion to 1 / r^s), the first `hot` of which carry a flash price
 * starting at T0 and take a large extra share of the traffic.
 *
 * A hot SKU's records may be changed during the run (the change run): change
 * k sets its flash price to `flash − 100 k` and its stock to `1000 − 10 k`.
 * `versionAt` says which change was in force at an instant, from the times
 * the writes were acknowledged.
 */
import { encodeRecord } from "../../records/encode";

export interface Answer {
  price: number;
  available: number;
}

export interface FlashCatalogue {
  skus: string[];
  hot: string[];
  /** A SKU drawn by popularity (u uniform in [0, 1)). */
  pick(u: number): string;
  /** The records of a SKU at change `version` (0: as seeded). */
  records(sku: string, version?: number): { stock: Uint8Array; price: Uint8Array };
  /** What an answer for `sku` must say at instant `t` under change `version`. */
  expected(sku: string, t: number, version: number): Answer;
}

export function flashCatalogue(n: number, hot: number, t0: number, s = 1.1, hotShare = 0.3): FlashCatalogue {
  const skus = Array.from({ length: n }, (_, i) => `fs-${String(i).padStart(6, "0")}`);
  const base = (i: number): number => 10_000 + (i % 97) * 1_000;
  const flash = (i: number, v: number): number => Math.floor(base(i) * 0.5) - 100 * v;
  const onHand = (v: number): number => 1000 - 10 * v;
  const index = new Map(skus.map((sku, i) => [sku, i]));
  // Cumulative Zipf weights of the long tail.
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) cdf[i] = acc += 1 / Math.pow(i + 1, s);
  for (let i = 0; i < n; i++) cdf[i]! /= acc;
  return {
    skus,
    hot: skus.slice(0, hot),
    pick: (u) => {
      if (u < hotShare) return skus[Math.floor((u / hotShare) * hot)]!;
      const v = (u - hotShare) / (1 - hotShare);
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid]! < v) lo = mid + 1;
        else hi = mid;
      }
      return skus[lo]!;
    },
    records: (sku, version = 0) => {
      const i = index.get(sku)!;
      const now = t0 - 3_600_000;
      return {
        stock: encodeRecord({ sku, warehouses: [{ id: "sh-1", regions: ["cn-east"], onHand: onHand(version), reserved: 0 }], safetyStock: 0, lowStockThreshold: 10, maxPerOrder: 0, updatedAt: now + version }),
        price: encodeRecord({
          sku,
          currency: "CNY",
          base: base(i),
          promotions: i < hot ? [{ id: `flash-${i}`, kind: "fixed", value: flash(i, version), startsAt: t0, endsAt: t0 + 3_600_000 }] : [],
          updatedAt: now + version,
        }),
      };
    },
    expected: (sku, t, version) => {
      const i = index.get(sku)!;
      return { price: i < hot && t >= t0 ? flash(i, version) : base(i), available: onHand(version) };
    },
  };
}

/**
 * The flash-sale catalogue: N SKUs with Zipf popularity (rank r is asked for
 * in proportion to 1 / r^s), the first `hot` of which carry a flash price
 * starting at T0 and take a large extra share of the traffic.
 */
import { encodeRecord } from "../../records/encode";

export interface FlashCatalogue {
  skus: string[];
  hot: string[];
  /** Price in force for a SKU at time t. */
  priceAt(sku: string, t: number): number;
  /** A SKU drawn by popularity (u uniform in [0, 1)). */
  pick(u: number): string;
  records(sku: string): { stock: Uint8Array; price: Uint8Array };
}

export function flashCatalogue(n: number, hot: number, t0: number, s = 1.1, hotShare = 0.3): FlashCatalogue {
  const skus = Array.from({ length: n }, (_, i) => `fs-${String(i).padStart(6, "0")}`);
  const base = (i: number): number => 10_000 + (i % 97) * 1_000;
  const flash = (i: number): number => Math.floor(base(i) * 0.5);
  const index = new Map(skus.map((sku, i) => [sku, i]));
  // Cumulative Zipf weights of the long tail.
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) cdf[i] = acc += 1 / Math.pow(i + 1, s);
  for (let i = 0; i < n; i++) cdf[i]! /= acc;
  return {
    skus,
    hot: skus.slice(0, hot),
    priceAt: (sku, t) => {
      const i = index.get(sku)!;
      return i < hot && t >= t0 ? flash(i) : base(i);
    },
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
    records: (sku) => {
      const i = index.get(sku)!;
      const now = t0 - 3_600_000;
      return {
        stock: encodeRecord({ sku, warehouses: [{ id: "sh-1", regions: ["cn-east"], onHand: 1000, reserved: 0 }], safetyStock: 0, lowStockThreshold: 10, maxPerOrder: 0, updatedAt: now }),
        price: encodeRecord({
          sku,
          currency: "CNY",
          base: base(i),
          promotions: i < hot ? [{ id: `flash-${i}`, kind: "fixed", value: flash(i), startsAt: t0, endsAt: t0 + 3_600_000 }] : [],
          updatedAt: now,
        }),
      };
    },
  };
}

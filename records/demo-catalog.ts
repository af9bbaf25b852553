/**
 * The demo data set: a small catalogue of stock and price records written
 * into an edge Redis as the production feeds would write them (SPEC §2).
 */
import type { Redis } from "ioredis";
import { encodeRecord } from "./encode";
import { priceKey, stockKey } from "./keys";

export const DEMO_REGIONS = ["cn-east", "cn-north", "us-west"] as const;

const FAMILIES = [
  { name: "iphone15-256g", base: 699_900, currency: "CNY" },
  { name: "sneaker-air", base: 89_900, currency: "CNY" },
  { name: "tv-55-oled", base: 499_900, currency: "CNY" },
  { name: "tee-basic", base: 9_900, currency: "CNY" },
  { name: "gpu-4090", base: 1_299_900, currency: "CNY" },
] as const;

export interface DemoRecords {
  sku: string;
  stock: Record<string, unknown>;
  price: Record<string, unknown>;
}

/** A SKU's records, as values to encode or already encoded. */
export interface SkuRecords {
  sku: string;
  stock: Record<string, unknown> | Uint8Array;
  price: Record<string, unknown> | Uint8Array;
}

/**
 * `count` SKUs; every seventh has a flash sale starting at `flashAt`, every
 * fifth a running 15 % promotion, some have regional prices and low stock.
 */
export function demoCatalog(count: number, now: number, flashAt = now + 60_000): DemoRecords[] {
  const out: DemoRecords[] = [];
  for (let i = 0; i < count; i++) {
    const f = FAMILIES[i % FAMILIES.length]!;
    const sku = `${f.name}-${String(i).padStart(5, "0")}`;
    const promotions: Record<string, unknown>[] = [];
    if (i % 5 === 0) promotions.push({ id: `weekly-${i}`, kind: "percent", value: 1500, startsAt: now - 3_600_000, endsAt: now + 86_400_000 });
    if (i % 7 === 0) promotions.push({ id: `flash-${i}`, kind: "fixed", value: Math.floor(f.base * 0.6), startsAt: flashAt, endsAt: flashAt + 600_000 });
    out.push({
      sku,
      stock: {
        sku,
        warehouses: [
          { id: "sh-1", regions: ["cn-east"], onHand: (i * 37) % 500, reserved: (i * 11) % 20 },
          { id: "bj-1", regions: ["cn-north", "cn-east"], onHand: (i * 13) % 40, reserved: 2 },
          { id: "la-1", regions: ["us-west"], onHand: (i * 7) % 90, reserved: 0 },
        ],
        safetyStock: 2,
        lowStockThreshold: 10,
        maxPerOrder: i % 3 === 0 ? 2 : 0,
        updatedAt: now,
      },
      price: {
        sku,
        currency: f.currency,
        base: f.base,
        ...(i % 4 === 0 ? { regional: { "us-west": Math.floor(f.base * 1.1) } } : {}),
        promotions,
        updatedAt: now,
      },
    });
  }
  return out;
}

const bytes = (v: Record<string, unknown> | Uint8Array): Buffer => Buffer.from(v instanceof Uint8Array ? v : encodeRecord(v));

/** Writes the records under `{prefix}{sku}:stock|price`, pipelined, 1,000 SKUs a round trip. */
export async function seedCatalog(redis: Redis, records: readonly SkuRecords[], prefix = "sku:"): Promise<void> {
  for (let i = 0; i < records.length; i += 1000) {
    const p = redis.pipeline();
    for (const r of records.slice(i, i + 1000)) p.set(stockKey(prefix, r.sku), bytes(r.stock)).set(priceKey(prefix, r.sku), bytes(r.price));
    await p.exec();
  }
}

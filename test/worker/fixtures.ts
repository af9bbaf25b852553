/** Record builders and request helpers for the worker tests. */
import { SELF } from "cloudflare:test";
import { inject } from "vitest";

let counter = 0;
/** A SKU id no other test uses, so tests never share cache entries or keys. */
export function uniqueSku(label = "sku"): string {
  return `${label}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

export function stockRecord(sku: string, onHand = 50, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sku,
    warehouses: [{ id: "sh", regions: ["cn-east"], onHand, reserved: 0 }],
    safetyStock: 0,
    lowStockThreshold: 10,
    updatedAt: Date.now(),
    ...extra,
  };
}

export interface PromoSpec {
  id: string;
  kind: "percent" | "amount" | "fixed";
  value: number;
  startsAt: number;
  endsAt: number;
  regions?: string[];
}

export function priceRecord(sku: string, base = 10_000, promotions: PromoSpec[] = []): Record<string, unknown> {
  return { sku, currency: "CNY", base, promotions, updatedAt: Date.now() };
}

export function prewarmRequest(body: unknown, init: { token?: string | null; contentType?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": init.contentType ?? "application/json" };
  if (init.token !== null) headers["Authorization"] = `Bearer ${init.token ?? inject("prewarmToken")}`;
  return SELF.fetch("https://edge.test/v1/prewarm", {
    method: "POST",
    headers,
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
}

export function purgeRequest(body: unknown): Promise<Response> {
  return SELF.fetch("https://edge.test/v1/purge", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${inject("prewarmToken")}` },
    body: JSON.stringify(body),
  });
}

export function getSku(sku: string, query = "", headers: Record<string, string> = {}): Promise<Response> {
  return SELF.fetch(`https://edge.test/v1/skus/${sku}${query}`, { headers });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

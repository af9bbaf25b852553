/** SPEC §9's rules version inside workerd: the hash of the go-stock.wasm the worker runs, on /healthz and in the prewarm answer. */
import { SELF } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { RULES_VERSION } from "../../worker/rules/version";
import { prewarmRequest, priceRecord, stockRecord, uniqueSku } from "./fixtures";
import { seed } from "./redis";

const expected = inject("rulesVersion");

describe("the rules version", () => {
  it("is the first 12 hex digits of the SHA-256 of build/go-stock.wasm", () => {
    expect(expected).toMatch(/^[0-9a-f]{12}$/);
    expect(RULES_VERSION).toBe(expected);
  });

  it("is shown by /healthz as rules", async () => {
    const res = await SELF.fetch("https://edge.test/healthz");
    const body = (await res.json()) as { rules?: string };
    expect(body.rules).toBe(expected);
  });

  it("is carried by the prewarm answer as rules", async () => {
    const sku = uniqueSku("rv");
    await seed(sku, stockRecord(sku, 3), priceRecord(sku, 1_000));
    const res = await prewarmRequest({ skus: [sku] });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ warmed: 1, rules: expected });
  });
});

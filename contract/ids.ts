/** Identifier syntax: SKU ids as SPEC §5 defines them, and region names; and their schemas for the OpenAPI documents. */
import * as z from "zod/mini";

const SKU_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidSku(s: unknown): s is string {
  return typeof s === "string" && SKU_ID.test(s);
}

/** Regions are free-form names chosen by ops; keep them short and printable. */
const REGION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidRegion(s: unknown): s is string {
  return typeof s === "string" && REGION.test(s);
}

/** The most SKUs one multi-get (`GET /v1/skus?ids=`) may ask for. */
export const MAX_IDS = 100;

/** A SKU id (the same test as `isValidSku`, which a JSON Schema shows as its pattern). */
export const skuIdSchema = z.string().check(z.regex(SKU_ID, { error: (i) => `not a SKU id: ${JSON.stringify(i.input)}` }));

/** A region name. */
export const regionSchema = z.string().check(z.regex(REGION, { error: (i) => `not a region name: ${JSON.stringify(i.input)}` }));

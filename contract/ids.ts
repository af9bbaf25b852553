/** Identifier syntax: SKU ids as SPEC §5 defines them, and region names. */

const SKU_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidSku(s: unknown): s is string {
  return typeof s === "string" && SKU_ID.test(s);
}

/** Regions are free-form names chosen by ops; keep them short and printable. */
const REGION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidRegion(s: unknown): s is string {
  return typeof s === "string" && REGION.test(s);
}

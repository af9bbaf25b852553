/** Where a SKU's records live in an edge or regional Redis (SPEC §2): `{prefix}{sku}:stock` and `{prefix}{sku}:price`. */

export function stockKey(prefix: string, sku: string): string {
  return `${prefix}${sku}:stock`;
}

export function priceKey(prefix: string, sku: string): string {
  return `${prefix}${sku}:price`;
}

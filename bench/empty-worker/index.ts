/**
 * An empty worker: the floor of what any answer from this workerd setup costs.
 *
 * `/` answers a small JSON body. `/hit` and `/hit-untagged` answer a warmed
 * read's body and headers as the edge worker sends them, with and without the
 * two headers issue 22 added (`Surrogate-Key`, `X-Rules-Version`): the cost of
 * those headers alone, measured with nothing else in the way. The values are
 * of a demo SKU's size (the benchmark prints the real ones beside them).
 */
const BODY = JSON.stringify({ ok: true });
const HIT_BODY = JSON.stringify({
  sku: "SKU-000003",
  region: "cn-east",
  available: true,
  quantity: 42,
  price: { currency: "CNY", amount: 1999, listAmount: 2499 },
  computedAt: 1765150000000,
  validUntil: 1765150030000,
  source: "edge",
});
const UNTAGGED: Record<string, string> = {
  "Content-Type": "application/json",
  "Cache-Control": "public, max-age=27",
  Age: "3",
  ETag: '"q7Yc1bq0kF3mW9xT"',
  "X-Cache": "HIT",
};
const TAGGED: Record<string, string> = { ...UNTAGGED, "Surrogate-Key": "promo:PROMO-7 sku:SKU-000003 wh:WH-cn-east-1 wh:WH-cn-east-2", "X-Rules-Version": "3f9a1c0b7d2e" };

export default {
  fetch(request: Request): Response {
    const path = request.url.slice(request.url.indexOf("/", request.url.indexOf("//") + 2));
    if (path === "/hit") return new Response(HIT_BODY, { headers: TAGGED });
    if (path === "/hit-untagged") return new Response(HIT_BODY, { headers: UNTAGGED });
    return new Response(BODY, { headers: { "Content-Type": "application/json" } });
  },
};

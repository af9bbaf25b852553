/**
 * The baseline of the prewarm benchmark with Cache API copies: a worker that
 * does nothing but put entries into the Cache API, in the same wrangler dev /
 * workerd setup as the edge worker, with the edge worker's write concurrency
 * (8 in flight) and bodies and headers of the same size as an aggregate's.
 *
 *   POST /puts?n=1000  -> {"puts": 1000}, once all n entries are stored
 *   GET  (any path)    -> 200, so that the bench's start-up probe of /healthz passes
 */
const BODY = JSON.stringify({
  sku: "sneaker-air-00007",
  region: "cn-east",
  stock: { available: 259, status: "in_stock", maxOrderQty: 259 },
  price: { amount: 89900, list: 89900, currency: "CNY", promoId: null },
  next: { at: 1763970060000, amount: 53940, promoId: "flash-7" },
  source: "edge",
  computedAt: 1763970000000,
  validUntil: 1763970030000,
});
const CONCURRENCY = 8;
let batch = 0;

async function puts(n: number): Promise<void> {
  const cache = (caches as unknown as { default: Cache }).default;
  const prefix = `https://cache-api-baseline.internal/${batch++}/`;
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) {
      await cache.put(
        `${prefix}${i}?region=cn-east`,
        new Response(BODY, {
          headers: { "Content-Type": "application/json", "Cache-Control": "public, max-age=330", "X-Segments": "[[1763970000000,1763970030000,null,312]]" },
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}

export default {
  async fetch(request: Request): Promise<Response> {
    if (request.method === "GET") return new Response("cache API baseline: POST /puts?n=1..10000\n"); // also its /healthz
    const n = Number(new URL(request.url).searchParams.get("n") ?? "1000");
    if (!Number.isInteger(n) || n < 1 || n > 10_000) return new Response("POST /puts?n=1..10000\n", { status: 400 });
    await puts(n);
    return Response.json({ puts: n });
  },
};

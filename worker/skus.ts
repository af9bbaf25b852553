/**
 * The read routes: GET /v1/skus/:sku and GET /v1/skus?ids=… (SPEC §5).
 * A fresh cache entry is served as is; a miss is computed read-through,
 * stored, and served.
 */
import type { IRequest } from "itty-router";
import { computeAggregates, storeAggregates, type Deps, type SkuOutcome } from "./aggregates";
import { isFresh, type CachedAggregate } from "./cache";
import { HttpError } from "./errors";
import { isValidRegion, isValidSku } from "./ids";
import { metrics } from "./metrics";

/** The most SKUs one multi-get may ask for. */
export const MAX_IDS = 100;

export function regionOf(request: IRequest, deps: Deps): string {
  const r = request.query["region"];
  if (r === undefined || r === "") return deps.cfg.edgeRegion;
  if (typeof r !== "string" || !isValidRegion(r)) {
    throw new HttpError("bad_request", `region must be one region name matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, got ${JSON.stringify(r)}`);
  }
  return r;
}

type CacheResult = "HIT" | "MISS";

function freshnessHeaders(entry: CachedAggregate, result: CacheResult, now: number): Headers {
  return new Headers({
    "Content-Type": "application/json",
    "Cache-Control": `public, max-age=${Math.max(0, Math.floor((entry.validUntil - now) / 1000))}`,
    Age: String(Math.max(0, Math.floor((now - entry.computedAt) / 1000))),
    ETag: entry.etag,
    "X-Cache": result,
  });
}

function etagMatches(header: string | null, etag: string): boolean {
  if (!header) return false;
  return header.trim() === "*" || header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

function serve(request: Request, entry: CachedAggregate, result: CacheResult, now: number): Response {
  const headers = freshnessHeaders(entry, result, now);
  if (etagMatches(request.headers.get("If-None-Match"), entry.etag)) return new Response(null, { status: 304, headers });
  return new Response(entry.json, { status: 200, headers });
}

function failureToError(o: Extract<SkuOutcome, { ok: false }>): HttpError {
  switch (o.code) {
    case "not_found":
      return new HttpError("not_found", `unknown SKU ${o.sku}: ${o.detail}`);
    case "invalid_record":
      return new HttpError("invalid_record", `the records of ${o.sku} are invalid: ${o.detail}`);
    case "regional_unavailable":
      return new HttpError("regional_unavailable", `no data can be had for ${o.sku}: ${o.detail}`, { "Retry-After": "1" });
    case "invalid_sku":
      return new HttpError("invalid_sku", `invalid SKU id ${JSON.stringify(o.sku)}`);
  }
}

interface Lookup {
  sku: string;
  entry: CachedAggregate | null;
}

/** Cache lookups, then one batch computation for every miss, stored in the background. */
async function resolve(
  deps: Deps,
  ctx: ExecutionContext,
  skus: readonly string[],
  region: string,
): Promise<{ hits: Lookup[]; computed: Map<string, SkuOutcome> }> {
  const now = Date.now();
  const hits = await Promise.all(
    skus.map(async (sku): Promise<Lookup> => {
      const entry = await deps.cache.get(sku, region);
      return { sku, entry: entry && isFresh(entry, now) ? entry : null };
    }),
  );
  const misses = hits.filter((h) => h.entry === null).map((h) => h.sku);
  metrics.cacheLookups.inc({ result: "hit" }, skus.length - misses.length);
  metrics.cacheLookups.inc({ result: "miss" }, misses.length);
  const computed = new Map<string, SkuOutcome>();
  if (misses.length > 0) {
    const outcomes = await computeAggregates(deps, { skus: misses, region, ttlSeconds: deps.cfg.cacheTtlSeconds });
    for (const o of outcomes) computed.set(o.sku, o);
    ctx.waitUntil(storeAggregates(deps.cache, region, outcomes, Date.now()));
  }
  return { hits, computed };
}

function decodePathSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // malformed %-escapes: left as is, the id check rejects them
  }
}

export async function getSku(request: IRequest, deps: Deps, ctx: ExecutionContext): Promise<Response> {
  const sku = decodePathSegment(request.params["sku"] ?? "");
  if (!isValidSku(sku)) throw new HttpError("invalid_sku", `SKU ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, got ${JSON.stringify(sku)}`);
  const region = regionOf(request, deps);
  const { hits, computed } = await resolve(deps, ctx, [sku], region);
  const hit = hits[0]!.entry;
  if (hit) return serve(request, hit, "HIT", Date.now());
  const o = computed.get(sku)!;
  if (!o.ok) throw failureToError(o);
  return serve(request, o.entry, "MISS", Date.now());
}

export async function getSkus(request: IRequest, deps: Deps, ctx: ExecutionContext): Promise<Response> {
  const raw = request.query["ids"];
  if (typeof raw !== "string" || raw === "") throw new HttpError("bad_request", "ids must be one comma-separated list of SKU ids");
  const ids = [...new Set(raw.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
  if (ids.length > MAX_IDS) throw new HttpError("payload_too_large", `at most ${MAX_IDS} ids per request, got ${ids.length}`);
  const region = regionOf(request, deps);
  const valid = ids.filter(isValidSku);
  const { hits, computed } = await resolve(deps, ctx, valid, region);
  const aggregates: string[] = [];
  const failed: { sku: string; code: string }[] = ids.filter((s) => !isValidSku(s)).map((sku) => ({ sku, code: "invalid_sku" }));
  for (const h of hits) {
    const o = h.entry ? null : computed.get(h.sku)!;
    if (h.entry) aggregates.push(h.entry.json);
    else if (o!.ok) aggregates.push(o!.entry.json);
    else failed.push({ sku: h.sku, code: o!.code });
  }
  const body = `{"region":${JSON.stringify(region)},"aggregates":[${aggregates.join(",")}],"failed":${JSON.stringify(failed)}}`;
  return new Response(body, { headers: { "Content-Type": "application/json", "Cache-Control": "no-store" } });
}

/**
 * The read routes: GET /v1/skus/:sku and GET /v1/skus?ids=… (SPEC §5).
 *
 * A fresh entry is a HIT. A miss is computed read-through, once per key
 * however many requests wait for it (coalescing), stored, and served. An
 * entry past its validUntil only because its TTL ran out is served STALE
 * while it is refreshed in the background (for a short grace), or when no
 * fresh data can be had (for a longer one); one whose price has changed
 * since is never served.
 *
 * A read with `Cache-Control: only-if-cached` (RFC 9111) only looks: the
 * cached entry (HIT, or STALE within the revalidation grace) or 504
 * `not_cached`; it reads no record, asks no region, computes and stores nothing.
 */
import type { IRequest } from "itty-router";
import { LRUCache } from "lru-cache";
import { computeAggregates, storeAggregates, type Deps, type SkuOutcome } from "../aggregates";
import { HttpError } from "./errors";
import { segmentEtag } from "../cache/etag";
import { isValidSku, MAX_IDS } from "../../contract/ids";
import { requestRegion } from "./region";
import { hotKeys } from "../node/hot-keys";
import { inflight, lookups } from "../isolate";
import { metrics } from "../metrics";
import { type CachedAggregate, type Lookup, type MemKey, type Segment, lookupAt, memKey, storeKey } from "../cache/entry";

/** The most SKUs one multi-get may ask for (the contract's). */
export { MAX_IDS };

export function regionOf(request: IRequest, deps: Deps): string {
  return requestRegion(deps.cfg, request.query["region"]);
}

export type CacheResult = "HIT" | "MISS" | "STALE";

/** One SKU's answer: a segment to serve, or why there is none. */
/** `staleBecause`, for a look answered STALE: its TTL ran out (`expired`), a soft purge (`purged`), or other rules computed it (`rules`). */
/** `globalAt`, for a look: when every data centre sees the cached copy (a node with a global tier, `WarmScope`). */
type Answer = { sku: string; segment: Segment; result: CacheResult; cachedUntil?: number; staleBecause?: "expired" | "purged" | "rules"; globalAt?: number } | { sku: string; failure: Extract<SkuOutcome, { ok: false }> };

/** How long the cache can answer for a key without computing it again: the end of its entry's last segment (its timeline may run past the current aggregate's validUntil, e.g. across a promotion boundary). */
const cachedUntil = (entry: CachedAggregate | null | undefined): number | undefined => entry?.segments[entry.segments.length - 1]?.validUntil;

const ageOf = (segment: Segment, now: number): number => Math.max(0, Math.floor((now - segment.computedAt) / 1000));
const maxAgeOf = (segment: Segment, now: number): number => Math.max(0, Math.floor((segment.validUntil - now) / 1000));

function responseHeaders(segment: Segment, result: CacheResult, now: number): Record<string, string> {
  return {
    "Content-Type": "application/json",
    "Cache-Control": `public, max-age=${maxAgeOf(segment, now)}`,
    Age: String(ageOf(segment, now)),
    ETag: segmentEtag(segment),
    "X-Cache": result,
    "Surrogate-Key": segment.tags,
    "X-Rules-Version": segment.rules,
  };
}

function etagMatches(header: string | null, etag: string): boolean {
  if (!header) return false;
  return header.trim() === "*" || header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

/**
 * HIT headers of the most recently served segments, with the `Age` and
 * `max-age` they carry (both change by the second), shared by the requests of
 * that second (a Headers is plain data, not an I/O object): turning five
 * header values into the runtime's Headers cost about a tenth of a warmed
 * read. Bounded by count: a Headers lives outside the JS heap, and one per
 * hot-cache entry cost a process 10+ MiB of RSS in the soak.
 */
const hitHeadersCache = new LRUCache<Segment, { age: number; maxAge: number; headers: Headers }>({ max: 2048 });

function hitHeaders(segment: Segment, now: number): Headers {
  const age = ageOf(segment, now);
  const maxAge = maxAgeOf(segment, now);
  const cached = hitHeadersCache.get(segment);
  if (cached && cached.age === age && cached.maxAge === maxAge) return cached.headers;
  const headers = new Headers(responseHeaders(segment, "HIT", now));
  hitHeadersCache.set(segment, { age, maxAge, headers });
  return headers;
}

export function serve(request: Request, segment: Segment, result: CacheResult, now: number): Response {
  const headers = result === "HIT" ? hitHeaders(segment, now) : responseHeaders(segment, result, now);
  if (etagMatches(request.headers.get("If-None-Match"), segmentEtag(segment))) return new Response(null, { status: 304, headers });
  return new Response(segment.json, { status: 200, headers });
}

function failureToError(o: Extract<SkuOutcome, { ok: false }>, deps: Deps): HttpError {
  switch (o.code) {
    case "not_found":
      return new HttpError("not_found", `unknown SKU ${o.sku}: ${o.detail}`);
    case "invalid_record":
      return new HttpError("invalid_record", `the records of ${o.sku} are invalid: ${o.detail}`);
    case "regional_unavailable": {
      const open = deps.regional?.state === "open";
      const retryAfter = open ? Math.ceil(deps.cfg.regionalBreakerHalfOpenMs / 1000) : 1;
      return new HttpError("regional_unavailable", `no data can be had for ${o.sku}: ${o.detail}`, { "Retry-After": String(retryAfter) });
    }
    case "invalid_sku":
      return new HttpError("invalid_sku", `invalid SKU id ${JSON.stringify(o.sku)}`);
    case "not_cached":
      return new HttpError("not_cached", `${o.sku} is not in the edge cache (only-if-cached)`);
  }
}

/** Whether the request asks for the cache alone (`Cache-Control: only-if-cached`). */
export function onlyIfCached(request: Request): boolean {
  const cc = request.headers.get("Cache-Control");
  return cc !== null && cc.split(",").some((d) => d.trim().toLowerCase() === "only-if-cached");
}


/**
 * Computes the given SKUs read-through, coalesced with any computation of
 * the same keys already running in this isolate, and stores the results
 * (each only over older data: `basis` is when this request began looking,
 * before it read any record). The in-flight entry lasts until the results
 * are in the cache.
 */
function computeCoalesced(deps: Deps, skus: readonly string[], region: string, basis: number): Promise<Map<string, SkuOutcome>> {
  return inflight
    .batch(
      skus.map((sku) => memKey(region, sku)),
      async (keys) => {
        const mine = keys.map(skuOf);
        const outcomes = await computeAggregates(deps, { skus: mine, region, ttlSeconds: deps.cfg.cacheTtlSeconds, basis }, "read");
        // Stored before the keys leave the in-flight set: a request arriving in
        // between would otherwise find neither and compute again.
        await storeAggregates(deps.cache, region, outcomes, Date.now(), "read", deps.cfg.negativeTtlSeconds);
        return new Map(outcomes.map((o) => [memKey(region, o.sku), o]));
      },
    )
    .then((m) => new Map(skus.map((sku) => [sku, m.get(memKey(region, sku))!])));
}

/** The SKU of a key in memory or in the lookups in flight. */
const skuOf = (key: string): string => key.slice(key.lastIndexOf("\n") + 1);

/** Whether a cached entry can answer at `at`: fresh, or stale within the revalidation grace. */
function servable(entry: CachedAggregate, at: number, swrMs: number): boolean {
  const l = lookupAt(entry, at);
  return l.state === "fresh" || (l.state === "stale" && l.staleForMs <= swrMs);
}

/** A look's key among the lookups in flight: a look reads no record, so a read must not wait on it for its records. */
const lookKey = (key: MemKey): string => `look\n${key}`;

/**
 * The cached entries of `skus` (null where none): for a read, hot entries
 * with no I/O and the rest in one coalesced store lookup; for a look, all
 * from the store (`EdgeCache.getMany`: what the node holds, not what this
 * process still remembers of it).
 */
async function cachedEntries(deps: Deps, skus: readonly string[], region: string, lookOnly: boolean): Promise<Map<string, CachedAggregate | null>> {
  const entries = new Map<string, CachedAggregate | null>();
  const cold: string[] = [];
  const at = Date.now();
  for (const sku of skus) {
    const k = memKey(region, sku);
    if (!lookOnly) hotKeys.count(k, at); // a look (verify) is no demand
    const hot = lookOnly ? undefined : deps.cache.hotEntry(k, at);
    if (hot) entries.set(sku, hot);
    else cold.push(lookOnly ? lookKey(k) : k);
  }
  if (cold.length > 0) {
    const looked = await lookups.batch(cold, async (keys) => {
      const found = await deps.cache.getMany(keys.map((k) => storeKey(skuOf(k), region)), lookOnly ? "look" : "read");
      return new Map(keys.map((k, i) => [k, found[i]!]));
    });
    for (const [k, e] of looked) entries.set(skuOf(k), e);
  }
  return entries;
}

const cachedNotFound = (sku: string): Answer => ({ sku, failure: { sku, ok: false, code: "not_found", detail: "neither the edge nor the region has it (cached not_found)" } });

/**
 * Answers a look (`only-if-cached`) from the cache alone: HIT, STALE within
 * the revalidation grace, or `not_cached`. Counted as looks, not as lookups:
 * a verify does not move the node's hit ratio.
 */
async function look(deps: Deps, skus: readonly string[], region: string): Promise<Answer[]> {
  const entries = await cachedEntries(deps, skus, region, true);
  const now = Date.now();
  const swrMs = deps.cfg.staleWhileRevalidateSeconds * 1000;
  return skus.map((sku): Answer => {
    const entry = entries.get(sku);
    const l: Lookup = entry ? lookupAt(entry, now) : { state: "absent" };
    if (l.state === "fresh" && l.segment.notFound) {
      metrics.cacheLooks.inc({ result: "hit" });
      return cachedNotFound(sku);
    }
    if (l.state === "fresh" || (l.state === "stale" && l.staleForMs <= swrMs)) {
      metrics.cacheLooks.inc({ result: l.state === "fresh" ? "hit" : "stale" });
      const globalAt = entry?.globalAt;
      if (l.state === "fresh") return { sku, segment: l.segment, result: "HIT", cachedUntil: cachedUntil(entry), globalAt };
      return { sku, segment: l.segment, result: "STALE", cachedUntil: cachedUntil(entry), staleBecause: entry?.soft ?? "expired", globalAt };
    }
    metrics.cacheLooks.inc({ result: "not_cached" });
    return { sku, failure: { sku, ok: false, code: "not_cached", detail: "not cached" } };
  });
}

/**
 * Answers every SKU: cache lookups, then one coalesced computation for all
 * that need one. Every answer is judged at the moment it is built, after any
 * wait for the computation: a cached entry whose price changed meanwhile is
 * answered with the segment now in force, or computed again, never with the
 * price of the moment the request began (SPEC §4).
 */
async function resolve(deps: Deps, skus: readonly string[], region: string): Promise<Answer[]> {
  deps.sync.poke(deps.redis, deps.background);
  const started = Date.now();
  const entries = await cachedEntries(deps, skus, region, false);
  const swrMs = deps.cfg.staleWhileRevalidateSeconds * 1000;
  const sieMs = deps.cfg.staleIfErrorSeconds * 1000;
  const computed = new Map<string, SkuOutcome>();
  /** How each SKU's lookup is counted: the first judgement (a cached answer found stale on its second look is still that). */
  const outcome = new Map<string, "hit" | "stale" | "miss">();
  const revalidate: string[] = [];
  let compute: string[] = [];
  const now = Date.now();
  for (const sku of skus) {
    const entry = entries.get(sku);
    const l: Lookup = entry ? lookupAt(entry, now) : { state: "absent" };
    if (l.state === "fresh") outcome.set(sku, "hit");
    else if (l.state === "stale" && l.staleForMs <= swrMs) {
      outcome.set(sku, "stale");
      // One recomputation for the node: not where another read holds the claim on it.
      if (!entry?.claimedElsewhere) revalidate.push(sku);
    } else {
      outcome.set(sku, "miss");
      compute.push(sku);
    }
  }
  if (revalidate.length > 0) deps.background(computeCoalesced(deps, revalidate, region, started).catch(() => undefined));
  // Two rounds at most: the misses, then any cached answer whose price changed while they were computed.
  for (let round = 0; compute.length > 0 && round < 2; round++) {
    // Under waitUntil too: if this request is cancelled (its client gone), the
    // computation others may be waiting on still finishes and stores its result.
    const computing = computeCoalesced(deps, compute, region, round === 0 ? started : Date.now());
    deps.background(computing.catch(() => undefined));
    for (const [sku, o] of await computing) computed.set(sku, o);
    const at = Date.now();
    compute = round > 0 ? [] : skus.filter((sku) => !computed.has(sku) && outcome.get(sku) === "hit" && !servable(entries.get(sku)!, at, swrMs));
  }

  const at = Date.now();
  const answers = skus.map((sku): Answer => {
    const entry = entries.get(sku);
    const l: Lookup = entry ? lookupAt(entry, at) : { state: "absent" };
    const o = computed.get(sku);
    if (o?.ok) {
      const current = lookupAt(o.entry, at);
      if (current.state === "fresh") return { sku, segment: current.segment, result: "MISS" };
      return { sku, failure: { sku, ok: false, code: "regional_unavailable", detail: "computed aggregate already expired" } };
    }
    if (o) {
      // Stale-if-error: nothing fresh can be had, and the stale price is still the one in force now.
      if (o.code === "regional_unavailable" && l.state === "stale" && l.staleForMs <= sieMs) {
        outcome.set(sku, "stale");
        return { sku, segment: l.segment, result: "STALE" };
      }
      return { sku, failure: o };
    }
    if (l.state === "fresh") return l.segment.notFound ? cachedNotFound(sku) : { sku, segment: l.segment, result: "HIT", cachedUntil: cachedUntil(entry) };
    if (l.state === "stale" && l.staleForMs <= swrMs) return { sku, segment: l.segment, result: "STALE", cachedUntil: cachedUntil(entry) };
    return { sku, failure: { sku, ok: false, code: "regional_unavailable", detail: "its price changed while it was answered and it could not be computed again" } };
  });
  for (const result of ["hit", "stale", "miss"] as const) {
    let n = 0;
    for (const r of outcome.values()) if (r === result) n++;
    if (n > 0) metrics.cacheLookups.inc({ result }, n);
  }
  return answers;
}

function decodePathSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // malformed %-escapes: left as is, the id check rejects them
  }
}

export async function getSku(request: IRequest, deps: Deps): Promise<Response> {
  const sku = decodePathSegment(request.params["sku"] ?? "");
  if (!isValidSku(sku)) throw new HttpError("invalid_sku", `SKU ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, got ${JSON.stringify(sku)}`);
  const region = regionOf(request, deps);
  const looking = onlyIfCached(request);
  const [answer] = looking ? await look(deps, [sku], region) : await resolve(deps, [sku], region);
  if ("failure" in answer!) throw failureToError(answer.failure, deps);
  const response = serve(request, answer!.segment, answer!.result, Date.now());
  if (looking && answer!.cachedUntil !== undefined) {
    const headers = new Headers(response.headers);
    headers.set("X-Cached-Until", String(answer!.cachedUntil));
    if (answer!.staleBecause) headers.set("X-Stale-Because", answer!.staleBecause);
    if (answer!.globalAt !== undefined) headers.set("X-Global-At", String(answer!.globalAt));
    return new Response(response.body, { status: response.status, headers });
  }
  return response;
}

export async function getSkus(request: IRequest, deps: Deps): Promise<Response> {
  const raw = request.query["ids"];
  if (typeof raw !== "string" || raw === "") throw new HttpError("bad_request", "ids must be one comma-separated list of SKU ids");
  const ids = [...new Set(raw.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
  if (ids.length > MAX_IDS) throw new HttpError("payload_too_large", `at most ${MAX_IDS} ids per request, got ${ids.length}`);
  const region = regionOf(request, deps);
  const looking = onlyIfCached(request);
  const valid = ids.filter(isValidSku);
  const answers = looking ? await look(deps, valid, region) : await resolve(deps, valid, region);
  const aggregates = answers.flatMap((a) => ("segment" in a ? [a.segment.json] : []));
  const failed = [
    ...ids.filter((s) => !isValidSku(s)).map((sku) => ({ sku, code: "invalid_sku" })),
    ...answers.flatMap((a) => ("failure" in a ? [{ sku: a.sku, code: a.failure.code }] : [])),
  ];
  // A look also says how long each cached key can be answered without computing it again, and why a STALE one is;
  // and on a node with a global tier, its scope and when every data centre sees each copy (absent: this data centre only).
  const scope = deps.cache.scope;
  const until = looking
    ? `,"cachedUntil":${JSON.stringify(Object.fromEntries(answers.flatMap((a) => ("cachedUntil" in a && a.cachedUntil !== undefined ? [[a.sku, a.cachedUntil]] : []))))}` +
      `,"stale":${JSON.stringify(Object.fromEntries(answers.flatMap((a) => ("staleBecause" in a && a.staleBecause !== undefined ? [[a.sku, a.staleBecause]] : []))))}` +
      `,"scope":${JSON.stringify(scope)}` +
      (scope === "global" ? `,"globalAt":${JSON.stringify(Object.fromEntries(answers.flatMap((a) => ("globalAt" in a && a.globalAt !== undefined ? [[a.sku, a.globalAt]] : []))))}` : "")
    : "";
  const body = `{"region":${JSON.stringify(region)},"aggregates":[${aggregates.join(",")}],"failed":${JSON.stringify(failed)}${until}}`;
  return new Response(body, { headers: { "Content-Type": "application/json", "Cache-Control": "no-store" } });
}

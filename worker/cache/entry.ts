/**
 * A cached entry and its keys: the data model every part of the edge cache
 * shares (the hot cache, the shared store, ETags, coalescing, the change log).
 *
 * An entry holds a short price timeline: the aggregate valid now and, when a
 * price change falls inside the TTL, the aggregates valid from each change
 * to the end of the TTL (segments). A read picks the segment in force at its
 * own millisecond, so a flash price starts exactly at T0 with no recompute.
 * The key is SKU + region only, so extra query parameters can neither create
 * nor poison entries.
 */

/** `${region}\n${sku}`: the key of an aggregate in memory, in coalescing and in the change log. */
export type MemKey = string;

export interface StoreKey {
  sku: string;
  region: string;
  /** `${region}\n${sku}` */
  mem: MemKey;
}

export interface Segment {
  json: string;
  computedAt: number;
  validUntil: number;
  /** The next price change after computedAt, or null. */
  nextAt: number | null;
  /** Its tags (SPEC §9), sorted, space-separated: the `Surrogate-Key` it is served with. */
  tags: string;
  /** The version of the rules that computed it (SPEC §9): its `X-Rules-Version`. */
  rules: string;
  /** Its strong ETag, computed on first use (`segmentEtag`): a prewarm need not hash what may never be read. */
  etag?: string;
  /** A cached `not_found` (NEGATIVE_TTL_SECONDS): no body, never served stale. */
  notFound?: true;
}

/** Segments in time order; each starts where the previous one ends. */
export interface CachedAggregate {
  segments: Segment[];
  /**
   * When the records it was computed from were read, at the latest (ms):
   * the computation's start. Writes are conditional on it: an entry is
   * stored only over an older one, and never over a purge that came after
   * it (`store.ts`), so a read that loaded its records before a purge or a
   * prewarm cannot put its older result back.
   */
  basis: number;
  /** A soft purge (`purged`), or rules other than the node's (`rules`), made it stale: served as STALE while one recomputation replaces it, within its validity. Never stored. */
  soft?: "purged" | "rules";
  /** Stale (`soft`), and another read of the node recomputes it (it holds the claim): served STALE without a recomputation of this read's own. Never stored. */
  claimedElsewhere?: true;
  /** Written to the global tier (Workers KV): when every data centre sees it (ms). */
  globalAt?: number;
  /**
   * Read from a store that learns of purges made elsewhere only with a delay
   * (the Cache API with Workers KV behind it): memory may answer with it
   * until then (ms), and then reads the store again.
   */
  heldUntil?: number;
}

/** The tags of an entry (its first segment's: later segments only lose promotions that have ended). */
export function entryTags(entry: CachedAggregate): string {
  return entry.segments[0]?.tags ?? "";
}

export type Lookup =
  | { state: "fresh"; segment: Segment }
  /** Past its validUntil only because its TTL ran out: the price it shows is still the one in force. */
  | { state: "stale"; segment: Segment; staleForMs: number }
  | { state: "absent" };

/** What a stored entry means at `now`. */
export function lookupAt(entry: CachedAggregate, now: number): Lookup {
  for (const s of entry.segments) {
    if (s.computedAt <= now && now < s.validUntil) {
      // Soft-purged: the price it shows is still valid, but it is to be replaced (never a cached not_found).
      if (entry.soft) return s.notFound ? { state: "absent" } : { state: "stale", segment: s, staleForMs: 0 };
      return { state: "fresh", segment: s };
    }
  }
  const last = entry.segments[entry.segments.length - 1];
  // Stale is allowed only when no price change has happened since: never a wrong price; never for a cached not_found.
  if (last && !last.notFound && now >= last.validUntil && (last.nextAt === null || now < last.nextAt)) {
    return { state: "stale", segment: last, staleForMs: now - last.validUntil };
  }
  return { state: "absent" };
}

/** A cached `not_found` answer of `sku` for `ttlMs` from `now`, found by a computation (with `rules`) that started at `basis`. */
export function notFoundEntry(sku: string, now: number, ttlMs: number, basis: number, rules: string): CachedAggregate {
  return { segments: [{ json: "", computedAt: now, validUntil: now + ttlMs, nextAt: null, tags: `sku:${sku}`, rules, notFound: true }], basis };
}

/** The key of a SKU's aggregate in memory, in coalescing and in the change log. */
export function memKey(region: string, sku: string): MemKey {
  return `${region}\n${sku}`;
}

export function storeKey(sku: string, region: string): StoreKey {
  return { sku, region, mem: memKey(region, sku) };
}


/** What a purge matches in memory: entries with any of its tags (a SKU's own tag among them), in its region or in any. */
export interface PurgeMatch {
  tags: ReadonlySet<string>;
  region: string | null;
}

/** Whether the entry held under `key` is matched by a purge. */
export function purgeMatches(m: PurgeMatch, key: MemKey, entry: CachedAggregate): boolean {
  if (m.region !== null && !key.startsWith(`${m.region}\n`)) return false;
  return entryTags(entry).split(" ").some((t) => m.tags.has(t));
}

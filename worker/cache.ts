/**
 * The edge cache (Cache API) of aggregates. The key is built from sku and
 * region only, so extra query parameters can neither create nor poison
 * entries.
 *
 * An entry holds a short price timeline: the aggregate valid now and, when a
 * price change falls inside the TTL, the aggregates valid from each change
 * to the end of the TTL (segments). A read picks the segment in force at its
 * own millisecond, so a flash price starts exactly at T0 with no recompute.
 * Freshness is decided here to the millisecond; the Cache-Control lifetime
 * only bounds how long the runtime keeps the bytes (stale grace included).
 *
 * In front of the Cache API sits the isolate's hot cache (`hot-cache.ts`):
 * reads try it first, and writes go to it at once while the Cache API copy
 * is written behind (`waitUntil`). With the hot cache off, writes go through.
 */
import type { HotCache } from "./hot-cache";
import type { WriteBehind } from "./write-behind";
import { metrics } from "./metrics";

export interface Segment {
  json: string;
  computedAt: number;
  validUntil: number;
  /** The next price change after computedAt, or null. */
  nextAt: number | null;
  /** Its strong ETag, computed on first use (`segmentEtag`): a prewarm need not hash what may never be read. */
  etag?: string;
}

/** Segments in time order; each starts where the previous one ends. */
export interface CachedAggregate {
  segments: Segment[];
}

export type Lookup =
  | { state: "fresh"; segment: Segment }
  /** Past its validUntil only because its TTL ran out: the price it shows is still the one in force. */
  | { state: "stale"; segment: Segment; staleForMs: number }
  | { state: "absent" };

const KEY_ORIGIN = "https://edge-prewarm.internal";
const H_SEGMENTS = "X-Segments";

type SegmentMeta = [computedAt: number, validUntil: number, nextAt: number | null, length: number];

export function cacheKey(sku: string, region: string): Request {
  return new Request(`${KEY_ORIGIN}/v1/skus/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`);
}

/** What a stored entry means at `now`. */
export function lookupAt(entry: CachedAggregate, now: number): Lookup {
  for (const s of entry.segments) if (s.computedAt <= now && now < s.validUntil) return { state: "fresh", segment: s };
  const last = entry.segments[entry.segments.length - 1];
  // Stale is allowed only when no price change has happened since: never a wrong price.
  if (last && now >= last.validUntil && (last.nextAt === null || now < last.nextAt)) {
    return { state: "stale", segment: last, staleForMs: now - last.validUntil };
  }
  return { state: "absent" };
}

function parseMeta(header: string | null): SegmentMeta[] | null {
  if (!header) return null;
  try {
    const v: unknown = JSON.parse(header);
    return Array.isArray(v) && v.length > 0 ? (v as SegmentMeta[]) : null;
  } catch {
    return null;
  }
}

const hotKey = (sku: string, region: string): string => `${region}\n${sku}`;

export class EdgeCache {
  constructor(
    private readonly cache: Cache,
    /** Extra seconds an entry is kept after its last validUntil, for stale serving. */
    private readonly graceSeconds: number,
    private readonly hot: HotCache,
    private readonly behind: WriteBehind,
    /** Whether the Cache API gets a copy (CACHE_API_WRITES). */
    private readonly cacheApiWrites: boolean,
    /** Runs work after the response (`ctx.waitUntil`). */
    private readonly background: (work: Promise<unknown>) => void,
  ) {}

  /**
   * Stores an aggregate timeline; nothing already invalid is stored. Once it
   * resolves, reads on this isolate find the entry; the Cache API copy may
   * still be on its way (counted in edge_cache_writes_total).
   */
  async put(sku: string, region: string, entry: CachedAggregate, now: number): Promise<boolean> {
    const last = entry.segments[entry.segments.length - 1];
    if (!last || last.validUntil <= now) return false;
    const key = hotKey(sku, region);
    const kept = this.hot.set(key, entry);
    metrics.hotCacheBytes.set(this.hot.bytes);
    if (kept) {
      if (this.cacheApiWrites) this.background(this.behind.run(() => this.writeBehind(key, sku, region, entry, now)));
      return true;
    }
    await this.write(sku, region, entry, now);
    return true;
  }

  private async writeBehind(key: string, sku: string, region: string, entry: CachedAggregate, now: number): Promise<void> {
    // Purged or rewritten since: the newer state wins, this copy is not written.
    if (!this.hot.holds(key, entry)) return metrics.cacheWrites.inc({ result: "superseded" });
    try {
      await this.write(sku, region, entry, now);
    } catch {
      // Counted in write(); the hot copy still serves this isolate.
    }
  }

  private async write(sku: string, region: string, entry: CachedAggregate, now: number): Promise<void> {
    const last = entry.segments[entry.segments.length - 1]!;
    const meta: SegmentMeta[] = entry.segments.map((s) => [s.computedAt, s.validUntil, s.nextAt, s.json.length]);
    try {
      await this.cache.put(
        cacheKey(sku, region),
        new Response(entry.segments.map((s) => s.json).join(""), {
          headers: {
            "Content-Type": "application/json",
            "Cache-Control": `public, max-age=${Math.ceil((last.validUntil - now) / 1000) + this.graceSeconds}`,
            [H_SEGMENTS]: JSON.stringify(meta),
          },
        }),
      );
      metrics.cacheWrites.inc({ result: "ok" });
    } catch (e) {
      metrics.cacheWrites.inc({ result: "error" });
      throw e;
    }
  }

  /** The entry of a key: from the hot cache, else from the Cache API (and then kept hot). */
  async get(sku: string, region: string): Promise<CachedAggregate | null> {
    const key = hotKey(sku, region);
    const hot = this.hot.get(key);
    if (hot) {
      if (lookupAt(hot, Date.now()).state !== "absent") {
        metrics.cacheLayerHits.inc({ layer: "memory" });
        return hot;
      }
      this.hot.delete(key); // past any use: drop it and ask the Cache API
    }
    const entry = await this.getCacheApi(sku, region);
    if (entry) {
      metrics.cacheLayerHits.inc({ layer: "cache_api" });
      this.hot.set(key, entry);
      metrics.hotCacheBytes.set(this.hot.bytes);
    }
    return entry;
  }

  private async getCacheApi(sku: string, region: string): Promise<CachedAggregate | null> {
    const res = await this.cache.match(cacheKey(sku, region));
    if (!res) return null;
    const meta = parseMeta(res.headers.get(H_SEGMENTS));
    if (!meta) {
      // Not an entry of ours (or a damaged one): treat it as absent.
      await res.body?.cancel();
      return null;
    }
    const body = await res.text();
    const segments: Segment[] = [];
    let o = 0;
    for (const [computedAt, validUntil, nextAt, length] of meta) {
      segments.push({ json: body.slice(o, o + length), computedAt, validUntil, nextAt });
      o += length;
    }
    return o === body.length ? { segments } : null;
  }

  async delete(sku: string, region: string): Promise<boolean> {
    const wasHot = this.hot.delete(hotKey(sku, region));
    metrics.hotCacheBytes.set(this.hot.bytes);
    const wasStored = await this.cache.delete(cacheKey(sku, region));
    return wasHot || wasStored;
  }
}

/**
 * The edge cache (Cache API) of aggregates. The key is built from sku and
 * region only, so extra query parameters can neither create nor poison
 * entries. Freshness is decided here from `validUntil` to the millisecond;
 * the Cache-Control lifetime only bounds how long the runtime keeps bytes.
 */

export interface CachedAggregate {
  json: string;
  computedAt: number;
  validUntil: number;
  etag: string;
}

const KEY_ORIGIN = "https://edge-prewarm.internal";
const H_COMPUTED_AT = "X-Computed-At";
const H_VALID_UNTIL = "X-Valid-Until";

export function cacheKey(sku: string, region: string): Request {
  return new Request(`${KEY_ORIGIN}/v1/skus/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`);
}

/** A strong ETag: the first 64 bits of the SHA-256 of the body. */
export async function etagOf(json: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(json)));
  let hex = "";
  for (let i = 0; i < 8; i++) hex += digest[i]!.toString(16).padStart(2, "0");
  return `"${hex}"`;
}

export class EdgeCache {
  constructor(private readonly cache: Cache) {}

  static default(): EdgeCache {
    return new EdgeCache(caches.default);
  }

  /** Stores an aggregate until its validUntil; nothing already invalid is stored. */
  async put(sku: string, region: string, entry: CachedAggregate, now: number): Promise<boolean> {
    const lifetimeMs = entry.validUntil - now;
    if (lifetimeMs <= 0) return false;
    await this.cache.put(
      cacheKey(sku, region),
      new Response(entry.json, {
        headers: {
          "Content-Type": "application/json",
          "Cache-Control": `public, max-age=${Math.ceil(lifetimeMs / 1000)}`,
          ETag: entry.etag,
          [H_COMPUTED_AT]: String(entry.computedAt),
          [H_VALID_UNTIL]: String(entry.validUntil),
        },
      }),
    );
    return true;
  }

  /** The stored entry, fresh or not; the caller decides what to do with an expired one. */
  async get(sku: string, region: string): Promise<CachedAggregate | null> {
    const res = await this.cache.match(cacheKey(sku, region));
    if (!res) return null;
    const computedAt = Number(res.headers.get(H_COMPUTED_AT));
    const validUntil = Number(res.headers.get(H_VALID_UNTIL));
    const etag = res.headers.get("ETag");
    if (!Number.isFinite(computedAt) || !Number.isFinite(validUntil) || !etag) {
      // Not an entry of ours (or a damaged one): treat it as absent.
      await res.body?.cancel();
      return null;
    }
    return { json: await res.text(), computedAt, validUntil, etag };
  }

  async delete(sku: string, region: string): Promise<boolean> {
    return this.cache.delete(cacheKey(sku, region));
  }
}

export function isFresh(entry: CachedAggregate, now: number): boolean {
  return now < entry.validUntil;
}

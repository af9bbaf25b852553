/**
 * The isolate's hot cache: the most recently used aggregate timelines kept
 * in memory, in front of the node's shared store, bounded by bytes
 * (lru-cache with `maxSize`). A warmed key is then answered without a round
 * trip to the store.
 *
 * Freshness is judged exactly as for stored entries (`lookupAt`); an entry
 * that can no longer be served even stale is dropped when met.
 */
import { LRUCache } from "lru-cache";
import { ETAG_LENGTH } from "./etag";
import type { CachedAggregate } from "./entry";

/**
 * Rough bytes an entry holds, on the high side: its JSON as UTF-16 (V8 keeps
 * ASCII in one byte a char), the segment metadata with its ETag once served,
 * and the map slot.
 */
export function entryBytes(key: string, entry: CachedAggregate): number {
  let n = 2 * key.length + 64;
  for (const s of entry.segments) n += 2 * (s.json.length + ETAG_LENGTH) + 48;
  return n;
}

export class HotCache {
  private readonly lru: LRUCache<string, CachedAggregate> | null;
  /** Entries dropped to stay within the budget since start-up. */
  evictions = 0;

  constructor(
    /** Budget in bytes; 0 disables the cache. */
    readonly maxBytes: number,
  ) {
    this.lru =
      maxBytes > 0
        ? new LRUCache<string, CachedAggregate>({
            maxSize: maxBytes,
            maxEntrySize: maxBytes,
            sizeCalculation: (entry, key) => entryBytes(key, entry),
            dispose: (_entry, _key, reason) => {
              if (reason === "evict") this.evictions++;
            },
          })
        : null;
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /** The entry of `key`, which becomes the most recently used. */
  get(key: string): CachedAggregate | undefined {
    return this.lru?.get(key);
  }

  /** Keeps `entry` as the most recent; false when it does not fit at all (or the cache is off). */
  set(key: string, entry: CachedAggregate): boolean {
    if (!this.lru) return false;
    if (entryBytes(key, entry) > this.maxBytes) {
      this.lru.delete(key);
      return false;
    }
    this.lru.set(key, entry);
    return true;
  }

  /** Whether `entry` is still the one held for `key` (a purge or a newer write replaces it). */
  holds(key: string, entry: CachedAggregate): boolean {
    return this.lru?.peek(key) === entry;
  }

  /** Drops every entry (they are not counted as evictions). */
  clear(): void {
    this.lru?.clear();
  }

  delete(key: string): boolean {
    return this.lru?.delete(key) ?? false;
  }

  /** Drops every entry `matches` (a purge by tag: one pass over the cache); how many. */
  deleteWhere(matches: (key: string, entry: CachedAggregate) => boolean): number {
    if (!this.lru) return 0;
    const drop: string[] = [];
    for (const [key, entry] of this.lru.entries()) if (matches(key, entry)) drop.push(key);
    for (const key of drop) this.lru.delete(key);
    return drop.length;
  }
}

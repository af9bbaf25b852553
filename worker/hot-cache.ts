/**
 * The isolate's hot cache: the most recently used aggregate timelines kept
 * in memory, in front of the node's shared store, bounded by bytes. A warmed
 * key is then answered without a round trip to the store.
 *
 * Freshness is judged exactly as for stored entries (`lookupAt`); an entry
 * that can no longer be served even stale is dropped when met.
 */
import type { CachedAggregate } from "./cache";
import { ETAG_LENGTH } from "./etag";

/** Rough bytes an entry holds: its JSON as UTF-16 plus the segment metadata (ETag included, once computed) and the map slot. */
export function entryBytes(key: string, entry: CachedAggregate): number {
  let n = 2 * key.length + 64;
  for (const s of entry.segments) n += 2 * (s.json.length + ETAG_LENGTH) + 48;
  return n;
}

export class HotCache {
  private readonly map = new Map<string, { entry: CachedAggregate; bytes: number }>();
  private used = 0;
  /** Entries dropped to stay within the budget since start-up. */
  evictions = 0;

  constructor(
    /** Budget in bytes; 0 disables the cache. */
    readonly maxBytes: number,
  ) {}

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): CachedAggregate | undefined {
    const slot = this.map.get(key);
    if (!slot) return undefined;
    // Map order is insertion order: re-inserting makes this the most recent.
    this.map.delete(key);
    this.map.set(key, slot);
    return slot.entry;
  }

  /** Keeps `entry` as the most recent; false when it does not fit at all (or the cache is off). */
  set(key: string, entry: CachedAggregate): boolean {
    this.delete(key);
    const bytes = entryBytes(key, entry);
    if (bytes > this.maxBytes) return false;
    this.map.set(key, { entry, bytes });
    this.used += bytes;
    for (const [k, slot] of this.map) {
      if (this.used <= this.maxBytes) break;
      this.map.delete(k);
      this.used -= slot.bytes;
      this.evictions++;
    }
    return true;
  }

  /** Whether `entry` is still the one held for `key` (a purge or a newer write replaces it). */
  holds(key: string, entry: CachedAggregate): boolean {
    return this.map.get(key)?.entry === entry;
  }

  /** Drops every entry (they are not counted as evictions). */
  clear(): void {
    this.map.clear();
    this.used = 0;
  }

  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (!slot) return false;
    this.map.delete(key);
    this.used -= slot.bytes;
    return true;
  }
}

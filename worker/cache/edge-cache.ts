/**
 * The edge cache of aggregates: the process's hot cache (memory) in front of
 * the node's shared store (`store.ts`). The key is sku + region only, so
 * extra query parameters can neither create nor poison entries.
 *
 * An entry holds a short price timeline: the aggregate valid now and, when a
 * price change falls inside the TTL, the aggregates valid from each change
 * to the end of the TTL (segments). A read picks the segment in force at its
 * own millisecond, so a flash price starts exactly at T0 with no recompute.
 *
 * The hot cache answers only while the process is in step with the node
 * (`NodeSync.trusted`): past that, reads go to the shared store, so that a
 * purge or a re-warm made by another process is seen within 1 s.
 */
import { EdgeRedisError, mayWrite } from "../sources/edge-redis";
import type { HotCache } from "./hot-cache";
import { gauges, metrics } from "../metrics";
import type { NodeSync } from "../node/sync";
import type { AggregateStore, Purge, StoreItem, StoreScope, StoreWrite } from "./store";
import type { WriteBehind } from "./write-behind";
import { type CachedAggregate, type Lookup, type MemKey, type StoreKey, lookupAt } from "./entry";

/**
 * The hot entry of `mem` and what it means at `now`, when the hot cache may
 * answer (the process is in step with the node) and the entry can still be
 * served; an entry past any use is dropped. No I/O.
 */
export function trustedHot(hot: HotCache, sync: NodeSync, mem: MemKey, now: number): { entry: CachedAggregate; found: Exclude<Lookup, { state: "absent" }> } | undefined {
  if (!sync.trusted(now)) return undefined;
  const entry = hot.get(mem);
  if (entry === undefined) return undefined;
  const found = lookupAt(entry, now);
  if (found.state === "absent" || (entry.heldUntil !== undefined && now >= entry.heldUntil)) {
    hot.delete(mem);
    return undefined;
  }
  return { entry, found };
}

/** Why a write is made: a prewarm tells the node's other processes; a read-through computation need not. */
export type WriteCause = "prewarm" | "read";

/** What became of an entry given to `putMany`: the store's answer, or `skipped` (already expired, or computed too long ago to be written). */
export type WriteResult = StoreWrite | "skipped";

export class EdgeCache {
  constructor(
    private readonly hot: HotCache,
    private readonly store: AggregateStore,
    private readonly sync: NodeSync,
    /** Queue of Cache API writes behind read-through computations (the Redis store writes at once). */
    private readonly behind: WriteBehind,
    /** Runs work after the response (`ctx.waitUntil`). */
    private readonly background: (work: Promise<unknown>) => void,
    /** The node's rules version: a stored entry computed by other rules is stale to it (SPEC §9). */
    private readonly rules: string,
  ) {}

  /** Where what this cache stores can be read (its store's scope). */
  get scope(): StoreScope {
    return this.store.scope;
  }

  /**
   * The hot entry of `mem` when the hot cache may answer and the entry can
   * still be served (fresh or stale): a read's fast path, with no I/O.
   */
  hotEntry(mem: MemKey, now: number): CachedAggregate | undefined {
    const held = trustedHot(this.hot, this.sync, mem, now);
    if (held) metrics.cacheLayerHits.inc({ layer: "memory" });
    return held?.entry;
  }

  /**
   * The entry of every key, one round trip to the shared store for all it reads.
   * A `read`: from the hot cache while it is trusted, else from the store,
   * with the records of the keys it lacks in the same round trip (for the
   * computation that follows). A `look` (only-if-cached, `prewarm verify`):
   * from the store, memory only when the store cannot be read: a trusted hot
   * cache may still hold, for up to TRUST_MS, the entry a re-warm made
   * through another process has just replaced (SPEC §7), and a verify right
   * after that re-warm must see what the node now holds.
   */
  async getMany(keys: readonly StoreKey[], mode: "read" | "look" = "read"): Promise<(CachedAggregate | null)[]> {
    const now = Date.now();
    const records = mode === "read";
    const trusted = records && this.sync.trusted(now);
    const out: (CachedAggregate | null)[] = keys.map(() => null);
    const fromStore: number[] = [];
    const untrustedHot = new Map<number, CachedAggregate>();
    keys.forEach((k, i) => {
      const hot = this.hot.get(k.mem);
      // Past any use, or held as long as a copy of this store may be.
      if (hot && (lookupAt(hot, now).state === "absent" || (hot.heldUntil !== undefined && now >= hot.heldUntil))) this.hot.delete(k.mem);
      else if (hot && trusted) {
        out[i] = hot;
        metrics.cacheLayerHits.inc({ layer: "memory" });
        return;
      } else if (hot) untrustedHot.set(i, hot);
      fromStore.push(i);
    });
    if (fromStore.length === 0) return out;
    const since = this.sync.generation;
    let found: (CachedAggregate | null)[];
    try {
      found = await this.store.getMany(fromStore.map((i) => keys[i]!), records);
    } catch (e) {
      if (!(e instanceof EdgeRedisError)) throw e;
      // The store cannot be read (nor purged, nor re-warmed): what this process holds is the best there is.
      for (const [i, hot] of untrustedHot) out[i] = hot;
      return out;
    }
    fromStore.forEach((i, j) => {
      const e = found[j];
      if (!e) return;
      if (e.segments[0]?.rules !== this.rules) e.soft ??= "rules";
      out[i] = e;
      metrics.cacheLayerHits.inc({ layer: "store" });
      // A soft-purged entry is not kept: the next read looks in the store again, where its replacement will be.
      if (!e.soft && this.sync.mayKeep(keys[i]!.mem, since)) this.keepHot(keys[i]!.mem, e);
    });
    this.publishGauges();
    return out;
  }

  /**
   * Stores entries that are still valid (an entry with no segments removes
   * the key's), each only where it is newer than what the node holds for its
   * key and than the key's last purge (by `basis`): in the shared store, and
   * in this process's memory only where the store took it. A prewarm's
   * entries are in the shared store (and the other processes told) once this
   * resolves; a read-through computation's go to the Cache API behind the
   * response. What became of each item.
   */
  async putMany(items: readonly StoreItem[], now: number, cause: WriteCause): Promise<WriteResult[]> {
    const results: WriteResult[] = items.map(() => "skipped");
    const valid: number[] = [];
    items.forEach(({ entry }, i) => {
      const last = entry.segments[entry.segments.length - 1];
      // Too old to know whether a purge came after it (its fence may be gone): not written.
      if ((last === undefined || last.validUntil > now) && mayWrite(entry.basis, now)) valid.push(i);
    });
    if (valid.length === 0) return results;
    const since = this.sync.generation;
    if (cause === "read" && this.store.kind === "cache-api") {
      for (const i of valid) {
        const { key, entry } = items[i]!;
        if (entry.segments.length === 0 || !this.sync.mayKeep(key.mem, since)) continue;
        this.keepHot(key.mem, entry);
        this.background(this.behind.run(() => this.writeBehind({ key, entry }, now)));
        results[i] = "written";
      }
      this.publishGauges();
      return results;
    }
    let stored: StoreWrite[];
    try {
      stored = await this.store.putMany(valid.map((i) => items[i]!), now, cause === "prewarm");
    } catch (e) {
      metrics.cacheWrites.inc({ result: "error" }, valid.length);
      if (cause === "prewarm") throw e;
      // A read still answers with what it computed; this process does not keep what the node may not hold.
      return results;
    }
    valid.forEach((i, j) => (results[i] = stored[j]!));
    const took = valid.filter((i) => results[i] === "written");
    // Not written over something newer (or a purge): whatever this process holds of the key is older still.
    for (const i of valid) if (results[i] !== "written") this.hot.delete(items[i]!.key.mem);
    metrics.cacheWrites.inc({ result: "ok" }, took.length);
    if (took.length < valid.length) metrics.cacheWrites.inc({ result: "superseded" }, valid.length - took.length);
    // Kept in memory only where no change since this write started replaced it (a sync may have applied one during the write).
    const keep = took.map((i) => this.sync.mayKeep(items[i]!.key.mem, since));
    // A prewarm is this process's own change: reads of this process that started before it keep nothing older.
    if (cause === "prewarm") this.sync.invalidate(took.map((i) => items[i]!.key.mem));
    took.forEach((i, j) => {
      const { key, entry } = items[i]!;
      if (keep[j] && entry.segments.length > 0) this.keepHot(key.mem, entry);
      else this.hot.delete(key.mem);
    });
    this.publishGauges();
    return results;
  }

  private async writeBehind(item: StoreItem, now: number): Promise<void> {
    // Purged or rewritten since: the newer state wins, this copy is not written.
    if (!this.hot.holds(item.key.mem, item.entry)) return metrics.cacheWrites.inc({ result: "superseded" });
    try {
      await this.store.putMany([item], now, false);
      metrics.cacheWrites.inc({ result: "ok" });
    } catch {
      metrics.cacheWrites.inc({ result: "error" });
    }
  }

  /**
   * Purges (SPEC §9) the aggregates of the SKUs, or with the tags, in the
   * region or every region: this process's memory at once (and nothing it
   * has in flight is kept), the shared store and every other process's
   * memory by the fences and the change log. How many aggregates matched.
   */
  async purge(p: Purge): Promise<number> {
    const now = Date.now();
    const match = { tags: new Set([...p.tags, ...p.skus.map((s) => `sku:${s}`)]), region: p.region };
    this.sync.purged(match);
    this.publishGauges();
    // Again once the fences are in the store: a read of this process may have loaded a matched entry in
    // between (this process skips its own log entry, so nothing else would drop it).
    const n = await this.store.purge(p, now, () => this.sync.purged(match));
    this.publishGauges();
    return n;
  }

  private keepHot(key: string, entry: CachedAggregate): void {
    const hold = this.store.memoryHoldMs;
    if (hold !== null) {
      // Behind a global tier every copy in memory is held for its time at most, whatever the change log says.
      const until = Date.now() + hold;
      entry.heldUntil = Math.min(entry.heldUntil ?? until, until);
    }
    const evicted = this.hot.evictions;
    this.hot.set(key, entry);
    if (this.hot.evictions > evicted) metrics.hotCacheEvictions.inc({}, this.hot.evictions - evicted);
  }

  private publishGauges(): void {
    gauges.hotCacheBytes.set(this.hot.bytes);
    gauges.hotCacheEntries.set(this.hot.size);
  }
}

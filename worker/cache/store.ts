/**
 * The node's shared store of aggregate timelines: what one process or
 * isolate warmed, every other one finds. Two homes, chosen by
 * AGGREGATE_STORE:
 *
 *  - `redis`: the node's edge Redis, beside the records (`{prefix}{sku}:agg:{region}`).
 *    A prewarm batch is one pipelined MULTI: every entry and the change-log
 *    entry that tells the other processes. The default of a self-hosted node.
 *  - `cache-api`: the Cache API (on Cloudflare, shared by a colo's isolates).
 *
 * The store's own expiry (Redis PX, Cache-Control max-age) only bounds how
 * long the bytes are kept (stale grace included); freshness is decided by
 * `lookupAt`, to the millisecond.
 */
import type { AggregateStoreKind } from "../config";
import { aggregateKey, EdgeRedisError, exchangeTimeoutMs, getAggOrRecords, priceKey, stockKey, type EdgeRedisSession } from "../sources/edge-redis";
import { metrics } from "../metrics";
import type { NodeSync } from "../node/sync";
import type { CachedAggregate, MemKey, Segment, StoreKey } from "./entry";

export interface StoreItem {
  key: StoreKey;
  entry: CachedAggregate;
}

export interface AggregateStore {
  readonly kind: AggregateStoreKind;
  /** The entries of `keys`, null where absent or damaged; one round trip for all. */
  getMany(keys: readonly StoreKey[]): Promise<(CachedAggregate | null)[]>;
  /** Stores every item, and when `announce`, tells the node's other processes (change log) once they are stored. */
  putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<void>;
  /** Removes the entries and tells the other processes; true where one was stored. */
  deleteMany(keys: readonly StoreKey[]): Promise<boolean[]>;
}

type SegmentMeta = [computedAt: number, validUntil: number, nextAt: number | null, length: number];

/** A segment's metadata; a cached not_found has length -1 (and no body). */
function metaOf(entry: CachedAggregate): SegmentMeta[] {
  return entry.segments.map((s) => [s.computedAt, s.validUntil, s.nextAt, s.notFound ? -1 : s.json.length]);
}

function parseMeta(text: string | null): SegmentMeta[] | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) && v.length > 0 && v.every((m) => Array.isArray(m) && m.length === 4) ? (v as SegmentMeta[]) : null;
  } catch {
    return null;
  }
}

/** Rebuilds the segments from their metadata and the concatenated bodies; null when they do not match. */
function entryOf(meta: SegmentMeta[] | null, body: string): CachedAggregate | null {
  if (!meta) return null;
  const segments: Segment[] = [];
  let o = 0;
  for (const [computedAt, validUntil, nextAt, length] of meta) {
    if (length === -1) {
      segments.push({ json: "", computedAt, validUntil, nextAt: null, notFound: true });
      continue;
    }
    segments.push({ json: body.slice(o, o + length), computedAt, validUntil, nextAt });
    o += length;
  }
  return o === body.length ? { segments } : null;
}

/** An entry as one string: its segment metadata (JSON, one line), a newline, the bodies. */
export function encodeEntry(entry: CachedAggregate): string {
  return `${JSON.stringify(metaOf(entry))}\n${entry.segments.map((s) => s.json).join("")}`;
}

export function decodeEntry(text: string): CachedAggregate | null {
  const nl = text.indexOf("\n");
  return nl < 0 ? null : entryOf(parseMeta(text.slice(0, nl)), text.slice(nl + 1));
}

/** How long the store keeps an entry's bytes (ms): to its last validUntil, plus the stale grace (none for a cached not_found). */
function keepMs(entry: CachedAggregate, now: number, graceSeconds: number): number {
  const last = entry.segments[entry.segments.length - 1]!;
  return Math.max(1, last.validUntil - now + (last.notFound ? 0 : graceSeconds * 1000));
}

export class RedisStore implements AggregateStore {
  readonly kind = "redis";

  constructor(
    private readonly session: EdgeRedisSession,
    private readonly sync: NodeSync,
    private readonly graceSeconds: number,
  ) {}

  private redisKey(k: StoreKey): string {
    return aggregateKey(this.session.cfg.redisKeyPrefix, k.sku, k.region);
  }

  /**
   * Reads each key's aggregate and, in the same round trip, where it is
   * absent, the SKU's records: the read-through computation that follows
   * finds them in `session.prefetched` instead of asking Redis again. A
   * warmed key costs no record read.
   */
  async getMany(keys: readonly StoreKey[]): Promise<(CachedAggregate | null)[]> {
    if (keys.length === 0) return [];
    const p = this.session.cfg.redisKeyPrefix;
    const redisKeys = keys.flatMap((k) => [this.redisKey(k), stockKey(p, k.sku), priceKey(p, k.sku)]);
    const values = await this.session.exchange((c) => getAggOrRecords(c, redisKeys), { timeoutMs: exchangeTimeoutMs(this.session.cfg, keys.length) });
    return keys.map((k, i) => {
      const agg = values[3 * i];
      if (!agg) {
        metrics.recordReads.inc();
        this.session.prefetched.set(k.sku, { stock: values[3 * i + 1] ?? null, price: values[3 * i + 2] ?? null });
        return null;
      }
      // A damaged aggregate is a miss whose records were not read: the computation reads them.
      return agg.length > 0 ? decodeEntry(agg.toString("utf8")) : null;
    });
  }

  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<void> {
    if (items.length === 0) return;
    await this.session.exchange(
      async (c) => {
        const m = c.multi();
        for (const { key, entry } of items) m.set(this.redisKey(key), encodeEntry(entry), "PX", keepMs(entry, now, this.graceSeconds));
        if (announce) this.sync.append(m, items.map((i) => i.key.mem));
        const out = await m.exec();
        const failed = out?.find(([err]) => err !== null);
        if (!out || failed) throw new Error(`aggregate write failed: ${failed?.[0]?.message ?? "transaction discarded"}`);
      },
      { timeoutMs: exchangeTimeoutMs(this.session.cfg, items.length) },
    );
  }

  async deleteMany(keys: readonly StoreKey[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    return this.session.exchange(
      async (c) => {
        const m = c.multi();
        for (const k of keys) m.del(this.redisKey(k));
        this.sync.append(m, keys.map((k) => k.mem));
        const out = await m.exec();
        if (!out) throw new Error("purge transaction discarded");
        return keys.map((_, i) => out[i]?.[1] === 1);
      },
      { timeoutMs: exchangeTimeoutMs(this.session.cfg, keys.length) },
    );
  }
}

const KEY_ORIGIN = "https://edge-prewarm.internal";
const H_SEGMENTS = "X-Segments";

export function cacheApiKey(sku: string, region: string): Request {
  return new Request(`${KEY_ORIGIN}/v1/skus/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`);
}

/**
 * The Cache API as the shared store. It has no batch calls: a batch is
 * written CACHE_API_CONCURRENCY puts at a time, and the change-log entry
 * follows once all are written (before that, another isolate that dropped its
 * hot copy could read the old one back).
 */
export class CacheApiStore implements AggregateStore {
  readonly kind = "cache-api";

  constructor(
    private readonly cache: Cache,
    private readonly session: EdgeRedisSession,
    private readonly sync: NodeSync,
    private readonly graceSeconds: number,
  ) {}

  async getMany(keys: readonly StoreKey[]): Promise<(CachedAggregate | null)[]> {
    return Promise.all(keys.map((k) => this.get(k)));
  }

  private async get(k: StoreKey): Promise<CachedAggregate | null> {
    const res = await this.cache.match(cacheApiKey(k.sku, k.region));
    if (!res) return null;
    const meta = parseMeta(res.headers.get(H_SEGMENTS));
    if (!meta) {
      // Not an entry of ours (or a damaged one): treat it as absent.
      await res.body?.cancel();
      return null;
    }
    return entryOf(meta, await res.text());
  }

  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<void> {
    await inBatches(items, (i) => this.put(i, now));
    if (announce) await this.announce(items.map((i) => i.key.mem));
  }

  async put({ key, entry }: StoreItem, now: number): Promise<void> {
    await this.cache.put(
      cacheApiKey(key.sku, key.region),
      new Response(entry.segments.map((s) => s.json).join(""), {
        headers: {
          "Content-Type": "application/json",
          "Cache-Control": `public, max-age=${Math.ceil(keepMs(entry, now, this.graceSeconds) / 1000)}`,
          [H_SEGMENTS]: JSON.stringify(metaOf(entry)),
        },
      }),
    );
  }

  async deleteMany(keys: readonly StoreKey[]): Promise<boolean[]> {
    const deleted = await Promise.all(keys.map((k) => this.cache.delete(cacheApiKey(k.sku, k.region))));
    await this.announce(keys.map((k) => k.mem));
    return deleted;
  }

  /**
   * Appends the change to the node's log. When the edge Redis is down, the
   * entries are in the Cache API all the same, and the other isolates, unable
   * to sync, stop trusting their hot caches and read the Cache API: nothing
   * stale is served, so this is no failure of the write.
   */
  private async announce(keys: MemKey[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.session.exchange(async (c) => {
        const p = c.pipeline();
        this.sync.append(p, keys);
        await p.exec();
      });
    } catch (e) {
      if (!(e instanceof EdgeRedisError)) throw e;
    }
  }
}

/** Cache API calls in flight at once for one batch. */
export const CACHE_API_CONCURRENCY = 8;

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CACHE_API_CONCURRENCY, items.length) }, lane));
  if (errors.length > 0) throw new AggregateError(errors, `${errors.length} of ${items.length} cache writes failed`);
}

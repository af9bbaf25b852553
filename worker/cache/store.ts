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
import type { ChainableCommander, default as Redis } from "ioredis";
import { aggregateKey, copyKey, EdgeRedisError, edgeRecordsOf, exchangeTimeoutMs, FENCE_MS, fenceKey, getAggOrRecords, getAll, priceKey, stockKey, type EdgeRedisSession } from "../sources/edge-redis";
import { metrics } from "../metrics";
import type { NodeSync } from "../node/sync";
import type { CachedAggregate, MemKey, Segment, StoreKey } from "./entry";

export interface StoreItem {
  key: StoreKey;
  entry: CachedAggregate;
}

/** What became of an item written to the store: written, not written over a newer entry, or not written over a purge that came after its basis. */
export type StoreWrite = "written" | "superseded" | "purged";

const STORE_WRITES: Record<string, StoreWrite> = { "1": "written", "0": "superseded", "-1": "purged" };

export interface AggregateStore {
  readonly kind: AggregateStoreKind;
  /**
   * The entries of `keys`, null where absent or damaged; one round trip for
   * all. With `records`, a key's records are read in the same round trip where
   * its entry is absent (for the computation that follows); a look reads none.
   */
  getMany(keys: readonly StoreKey[], records: boolean): Promise<(CachedAggregate | null)[]>;
  /**
   * Stores every item that is newer than what the store holds for its key
   * and than the key's last purge (by `basis`); an item with no segments
   * removes the entry on the same terms. When `announce`, tells the node's
   * other processes (change log) about what was written, in the same step.
   */
  putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<StoreWrite[]>;
  /**
   * Removes the entries, and the region's copies of their SKUs, and fences
   * the SKUs at `now`: nothing computed from records read before it is
   * written after it. Tells the other processes; true where one was stored.
   */
  deleteMany(keys: readonly StoreKey[], now: number): Promise<boolean[]>;
}

type SegmentMeta = [computedAt: number, validUntil: number, nextAt: number | null, length: number, tags: string];

/** A segment's metadata; a cached not_found has length -1 (and no body). */
function metaOf(entry: CachedAggregate): SegmentMeta[] {
  return entry.segments.map((s) => [s.computedAt, s.validUntil, s.nextAt, s.notFound ? -1 : s.json.length, s.tags]);
}

function parseMeta(text: string | null): SegmentMeta[] | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) && v.length > 0 && v.every((m) => Array.isArray(m) && m.length === 5 && typeof m[4] === "string") ? (v as SegmentMeta[]) : null;
  } catch {
    return null;
  }
}

/** Rebuilds the segments from their metadata and the concatenated bodies; null when they do not match. */
function entryOf(meta: SegmentMeta[] | null, body: string): Segment[] | null {
  if (!meta) return null;
  const segments: Segment[] = [];
  let o = 0;
  for (const [computedAt, validUntil, nextAt, length, tags] of meta) {
    if (length === -1) {
      segments.push({ json: "", computedAt, validUntil, nextAt: null, tags, notFound: true });
      continue;
    }
    segments.push({ json: body.slice(o, o + length), computedAt, validUntil, nextAt, tags });
    o += length;
  }
  return o === body.length ? segments : null;
}

/** An entry as one string: its basis, a newline, its segment metadata (JSON, one line), a newline, the bodies. */
export function encodeEntry(entry: CachedAggregate): string {
  return `${entry.basis}\n${JSON.stringify(metaOf(entry))}\n${entry.segments.map((s) => s.json).join("")}`;
}

export function decodeEntry(text: string): CachedAggregate | null {
  const a = text.indexOf("\n");
  const b = a < 0 ? -1 : text.indexOf("\n", a + 1);
  const basis = Number(text.slice(0, a));
  if (b < 0 || a === 0 || !Number.isSafeInteger(basis)) return null;
  const segments = entryOf(parseMeta(text.slice(a + 1, b)), text.slice(b + 1));
  return segments && { segments, basis };
}

/** How long the store keeps an entry's bytes (ms): to its last validUntil, plus the stale grace (none for a cached not_found). */
function keepMs(entry: CachedAggregate, now: number, graceSeconds: number): number {
  const last = entry.segments[entry.segments.length - 1]!;
  return Math.max(1, last.validUntil - now + (last.notFound ? 0 : graceSeconds * 1000));
}

/**
 * Conditional writes of a batch, and their change-log entry, in one step.
 * An item is written (or, with an empty value, its entry removed) only when
 * the entry stored for its key is not newer (its basis, the number before
 * the first newline) and its SKU was not purged at or after its basis (the
 * fence): a read that loaded its records before a purge or a prewarm cannot
 * put its older result back, nor cut a newer entry's TTL.
 * KEYS: the change log, then (aggregate, fence) pairs.
 * ARGV: process id ('' = not announced), log MINID, then (basis, px, value,
 * log key) quadruples. Answers per item 1 (written), 0 (a newer entry is
 * stored) or -1 (purged since its basis).
 */
const PUT_IF_NEWER = `local written, logged = {}, {}
for i = 2, #KEYS, 2 do
  local a = 3 + 2 * (i - 2)
  local basis = tonumber(ARGV[a])
  local ok = 1
  local f = redis.call('GET', KEYS[i + 1])
  if f and tonumber(f) >= basis then ok = -1 end
  if ok == 1 then
    local cur = redis.pcall('GETRANGE', KEYS[i], 0, 24)
    if type(cur) == 'string' then
      local b = tonumber(string.match(cur, '^(%d+)\\n'))
      if b and b > basis then ok = 0 end
    end
  end
  if ok == 1 then
    if ARGV[a + 2] == '' then redis.call('DEL', KEYS[i]) else redis.call('SET', KEYS[i], ARGV[a + 2], 'PX', ARGV[a + 1]) end
    logged[#logged + 1] = ARGV[a + 3]
  end
  written[#written + 1] = ok
end
if ARGV[1] ~= '' and #logged > 0 then
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'p', ARGV[1], 'k', table.concat(logged, ','))
end
return written`;

type PutClient = Redis & { putIfNewer(numKeys: number, ...args: (string | number)[]): Promise<number[]> };

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
   * Reads each key's aggregate and, with `records`, where it is absent, the
   * SKU's records and the region's copy, in the same round trip: the
   * read-through computation that follows finds them in
   * `session.prefetched` instead of asking Redis again. A warmed key costs
   * no record read; a look costs none at all.
   */
  async getMany(keys: readonly StoreKey[], records: boolean): Promise<(CachedAggregate | null)[]> {
    if (keys.length === 0) return [];
    const p = this.session.cfg.redisKeyPrefix;
    const timeoutMs = exchangeTimeoutMs(this.session.cfg, keys.length);
    if (!records) {
      const values = await this.session.exchange((c) => getAll(c, keys.map((k) => this.redisKey(k))), { timeoutMs });
      return values.map((agg) => (agg && agg.length > 0 ? decodeEntry(agg.toString("utf8")) : null));
    }
    const redisKeys = keys.flatMap((k) => [this.redisKey(k), stockKey(p, k.sku), priceKey(p, k.sku), copyKey(p, k.sku)]);
    const values = await this.session.exchange((c) => getAggOrRecords(c, redisKeys), { timeoutMs });
    return keys.map((k, i) => {
      const agg = values[4 * i];
      if (!agg) {
        metrics.recordReads.inc();
        this.session.prefetched.set(k.sku, edgeRecordsOf(values[4 * i + 1], values[4 * i + 2], values[4 * i + 3]));
        return null;
      }
      // A damaged aggregate is a miss whose records were not read: the computation reads them.
      return agg.length > 0 ? decodeEntry(agg.toString("utf8")) : null;
    });
  }

  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<StoreWrite[]> {
    if (items.length === 0) return [];
    const p = this.session.cfg.redisKeyPrefix;
    const keys: string[] = [this.sync.logKey];
    const args: (string | number)[] = [announce ? this.sync.processId : "", this.sync.logMinId(now)];
    for (const { key, entry } of items) {
      keys.push(this.redisKey(key), fenceKey(p, key.sku));
      const removal = entry.segments.length === 0;
      args.push(entry.basis, removal ? 1 : keepMs(entry, now, this.graceSeconds), removal ? "" : encodeEntry(entry), this.sync.logEntryKey(key.mem));
    }
    const out = await this.session.exchange(
      async (c) => {
        if (!("putIfNewer" in c)) c.defineCommand("putIfNewer", { lua: PUT_IF_NEWER });
        return (c as PutClient).putIfNewer(keys.length, ...keys, ...args);
      },
      { timeoutMs: exchangeTimeoutMs(this.session.cfg, items.length) },
    );
    if (!Array.isArray(out) || out.length !== items.length) throw new EdgeRedisError(`aggregate write answered ${Array.isArray(out) ? out.length : 0} results for ${items.length} items`);
    return out.map((v) => STORE_WRITES[String(v)] ?? "superseded");
  }

  async deleteMany(keys: readonly StoreKey[], now: number): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const p = this.session.cfg.redisKeyPrefix;
    return this.session.exchange(
      async (c) => {
        const m = c.multi();
        for (const k of keys) m.del(this.redisKey(k));
        fenceSkus(m, p, keys, now);
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
const H_BASIS = "X-Basis";

export function cacheApiKey(sku: string, region: string): Request {
  return new Request(`${KEY_ORIGIN}/v1/skus/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`);
}

/**
 * The Cache API as the shared store. It has no batch calls: a batch is
 * written CACHE_API_CONCURRENCY puts at a time, and the change-log entry
 * follows once all are written (before that, another isolate that dropped its
 * hot copy could read the old one back). It has no conditional write either:
 * here only the isolate's own memory is kept from older results (by
 * generation, `NodeSync.mayKeep`); the fence of a purge holds on the Redis
 * store alone.
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
    const segments = entryOf(meta, await res.text());
    return segments && { segments, basis: Number(res.headers.get(H_BASIS)) || 0 };
  }

  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<StoreWrite[]> {
    await inBatches(items, (i) => this.put(i, now));
    if (announce) await this.announce(items.map((i) => i.key.mem));
    return items.map(() => "written");
  }

  async put({ key, entry }: StoreItem, now: number): Promise<void> {
    if (entry.segments.length === 0) {
      await this.cache.delete(cacheApiKey(key.sku, key.region));
      return;
    }
    await this.cache.put(
      cacheApiKey(key.sku, key.region),
      new Response(entry.segments.map((s) => s.json).join(""), {
        headers: {
          "Content-Type": "application/json",
          "Cache-Control": `public, max-age=${Math.ceil(keepMs(entry, now, this.graceSeconds) / 1000)}`,
          [H_SEGMENTS]: JSON.stringify(metaOf(entry)),
          [H_BASIS]: String(entry.basis),
        },
      }),
    );
  }

  async deleteMany(keys: readonly StoreKey[], now: number): Promise<boolean[]> {
    const deleted = await Promise.all(keys.map((k) => this.cache.delete(cacheApiKey(k.sku, k.region))));
    await this.announce(keys.map((k) => k.mem), (p) => fenceSkus(p, this.session.cfg.redisKeyPrefix, keys, now));
    return deleted;
  }

  /**
   * Appends the change to the node's log (with `also`, in the same round
   * trip). When the edge Redis is down, the entries are in the Cache API all
   * the same, and the other isolates, unable to sync, stop trusting their hot
   * caches and read the Cache API: nothing stale is served, so this is no
   * failure of the write.
   */
  private async announce(keys: MemKey[], also?: (p: ChainableCommander) => void): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.session.exchange(async (c) => {
        const p = c.pipeline();
        also?.(p);
        this.sync.append(p, keys);
        await p.exec();
      });
    } catch (e) {
      if (!(e instanceof EdgeRedisError)) throw e;
    }
  }
}

/** A purge's fence on each SKU of `keys` and the removal of the region's copies (`fenceKey`, `copyKey`). */
function fenceSkus(batch: ChainableCommander, prefix: string, keys: readonly StoreKey[], now: number): void {
  for (const sku of new Set(keys.map((k) => k.sku))) batch.set(fenceKey(prefix, sku), now, "PX", FENCE_MS).del(copyKey(prefix, sku));
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

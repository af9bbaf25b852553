/**
 * The node's shared store of aggregate timelines: what one process or
 * isolate warmed, every other one finds. Two homes, chosen by
 * AGGREGATE_STORE:
 *
 *  - `redis`: the node's edge Redis, beside the records (`{prefix}{sku}:agg:{region}`).
 *    A prewarm batch is one pipelined MULTI: every entry and the change-log
 *    entry that tells the other processes. The default of a self-hosted node.
 *  - `cache-api`: the Cache API (on Cloudflare, shared by a data centre's
 *    isolates), with Workers KV behind it when AGGREGATES_KV is bound (the
 *    global tier, `kv-tier.ts`: what one data centre warms, every other finds).
 *
 * The store's own expiry (Redis PX, Cache-Control max-age) only bounds how
 * long the bytes are kept (stale grace included); freshness is decided by
 * `lookupAt`, to the millisecond.
 */
import type { AggregateStoreKind } from "../config";
import type Redis from "ioredis";
import { aggregateKey, copiesKey, copyKey, EdgeRedisError, edgeRecordsOf, exchangeTimeoutMs, FENCE_MS, getAggregates, LUA_FENCE, priceKey, regionsKey, stockKey, tagFenceKey, type EdgeRedisSession } from "../sources/edge-redis";
import { metrics } from "../metrics";
import type { NodeSync } from "../node/sync";
import { eachInLanes } from "./lanes";
import { entryTags, storeKey, type CachedAggregate, type MemKey, type StoreKey } from "./entry";
import { decodeEntry, encodeEntry, entryOf, keepMs, metaOf, parseMeta } from "./entry-text";
import { GlobalPurgeTooLargeError, GlobalTierError, MAX_GLOBAL_FENCES, type KvTier } from "./kv-tier";

export interface StoreItem {
  key: StoreKey;
  entry: CachedAggregate;
}

/** What became of an item written to the store: written, not written over a newer entry, or not written over a purge that came after its basis. */
export type StoreWrite = "written" | "superseded" | "purged";

const STORE_WRITES: Record<string, StoreWrite> = { "1": "written", "0": "superseded", "-1": "purged" };

export interface AggregateStore {
  readonly kind: AggregateStoreKind;
  /** Where what it holds can be read. */
  readonly scope: StoreScope;
  /**
   * How long a process may keep a copy in memory (ms) before it asks the
   * store again, or null: as long as the node's change log says nothing
   * changed. A purge made in another data centre reaches this one through
   * the global tier alone, so there a copy is kept only so long.
   */
  readonly memoryHoldMs: number | null;
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
   * Purges (SPEC §9) every aggregate of the SKUs named, or with a tag named,
   * in `region` or in every region: first fences their tags at `now` (no
   * process serves them as fresh from then on, and no older computation
   * writes them), drops the region's copies of the SKUs and tells the other
   * processes (then calls `fenced`); then removes them (hard) or leaves them
   * stale (soft). How many aggregates matched.
   */
  purge(p: Purge, now: number, fenced: () => void): Promise<number>;
}

/** Where what a store holds can be read: one node, one data centre, or every data centre (the contract's `WarmScope`). */
export type StoreScope = "node" | "data-centre" | "global";

/** A purge this store cannot make (by tag, or soft, on the Cache API). */
export class PurgeUnsupportedError extends Error {
  override readonly name = "PurgeUnsupportedError";
}

/** What a purge matches (SPEC §9). */
export interface Purge {
  /** null: every region the node holds. */
  region: string | null;
  skus: readonly string[];
  tags: readonly string[];
  soft: boolean;
}

/**
 * Conditional writes of a batch, and their change-log entry, in one step.
 * An item is written (or, with an empty value, its entry removed) only when
 * the entry stored for its key is not newer (its basis, the number that
 * starts it) and none of its tags was purged at or after its basis (the
 * tag fences, its SKU's tag among them): a read that loaded its records
 * before a purge or a prewarm cannot put its older result back, nor cut a
 * newer entry's TTL. The regions written are added to the node's set.
 * KEYS: the change log, the regions set, then the aggregates.
 * ARGV: process id ('' = not announced), log MINID, fence key prefix, the
 * number of regions, the regions, then (basis, px, value, log key, tags)
 * quintuples. Answers per item 1 (written), 0 (a newer entry is stored) or
 * -1 (purged since its basis).
 */
const PUT_IF_NEWER = `${LUA_FENCE}
local written, logged = {}, {}
local nr = tonumber(ARGV[4])
if nr > 0 then redis.call('SADD', KEYS[2], unpack(ARGV, 5, 4 + nr)) end
for i = 3, #KEYS do
  local a = 5 + nr + 5 * (i - 3)
  local basis = tonumber(ARGV[a])
  local ok = 1
  for t in string.gmatch(ARGV[a + 4], '%S+') do
    local h, s = fence(redis.call('GET', ARGV[3] .. t))
    if h >= basis or s >= basis then ok = -1 break end
  end
  if ok == 1 then
    local cur = redis.pcall('GETRANGE', KEYS[i], 0, 24)
    if type(cur) == 'string' then
      local b = tonumber(string.match(cur, '^(%d+)%s'))
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

/**
 * A purge's first, atomic step: each matched tag's fence set to `now` (hard
 * or soft, the other kept), the region's copies of the purged SKUs dropped,
 * and the change-log entry that tells the node's processes (its tags, its
 * region, soft or not). From here no process's store read gets a matched
 * aggregate as fresh, and no older computation writes one. Answers the
 * regions the node holds aggregates in.
 * KEYS: the change log, the regions set, the tags' fences, then the copies.
 * ARGV: process id, log MINID, now, '1' = soft, fence TTL ms, the number of
 * fences, the region ('' = every region), the tags (space-separated), and
 * for a purge by tag the copies key (`copiesKey`: every copy asked for
 * before now is ignored, since a copy's tags are not known without decoding
 * its records).
 */
const PURGE_FENCE = `${LUA_FENCE}
local now, soft, nf = ARGV[3], ARGV[4] == '1', tonumber(ARGV[6])
for i = 3, 2 + nf do
  local h, s = fence(redis.call('GET', KEYS[i]))
  if soft then s = now else h = now end
  redis.call('SET', KEYS[i], h .. ' ' .. s, 'PX', ARGV[5])
end
if #KEYS > 2 + nf then redis.call('DEL', unpack(KEYS, 3 + nf)) end
if ARGV[9] ~= '' then redis.call('SET', ARGV[9], now, 'PX', ARGV[5]) end
redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'p', ARGV[1], 't', ARGV[8], 'r', ARGV[7], 's', ARGV[4])
return redis.call('SMEMBERS', KEYS[2])`;

/**
 * A purge's second step over the aggregate keys, a bounded slice at a time
 * (one SCAN call) so that reads go on between slices: counts the aggregates
 * with a purged tag and a basis at or before the purge, and with a hard
 * purge removes them (a soft purge leaves them, stale, to their reads); the
 * region's copy of each matched SKU's records (`copyKey`) is dropped either
 * way, or its recomputation would read the purged records again.
 * ARGV: cursor, MATCH pattern, COUNT, the purge's time, '1' = hard, the
 * purged tags. Answers the next cursor and the count.
 */
const PURGE_SCAN = `local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local at, hard = tonumber(ARGV[4]), ARGV[5] == '1'
local purged = {}
for i = 6, #ARGV do purged[ARGV[i]] = true end
local n = 0
for _, k in ipairs(r[2]) do
  local v = redis.pcall('GETRANGE', k, 0, 8191)
  if type(v) == 'string' and not string.find(v, '\\n', 1, true) then v = redis.pcall('GET', k) end
  if type(v) == 'string' then
    local basis = tonumber(string.match(v, '^(%d+)\\t'))
    local tags = string.match(v, '^%d+\\t([^\\t\\n]*)')
    if basis and tags and basis <= at then
      for t in string.gmatch(tags, '%S+') do
        if purged[t] then
          n = n + 1
          if hard then redis.call('DEL', k) end
          -- The region's copy of its records goes too: its recomputation asks the region again.
          local sku = string.match(k, '^(.*):agg:[^:]*$')
          if sku then redis.call('DEL', sku .. ':regional') end
          break
        end
      end
    end
  end
end
return {r[1], n}`;

/** Aggregate keys one PURGE_SCAN slice looks at. */
const PURGE_SCAN_COUNT = 1000;

type StoreScripts = Redis & {
  putIfNewer(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  purgeFence(numKeys: number, ...args: (string | number)[]): Promise<string[]>;
  purgeScan(numKeys: number, ...args: (string | number)[]): Promise<[string, number]>;
};

function withStoreScripts(c: Redis): StoreScripts {
  if (!("putIfNewer" in c)) {
    c.defineCommand("putIfNewer", { lua: PUT_IF_NEWER });
    c.defineCommand("purgeFence", { lua: PURGE_FENCE });
    c.defineCommand("purgeScan", { lua: PURGE_SCAN });
  }
  return c as StoreScripts;
}

/** A purge's first step (PURGE_FENCE) in the edge Redis: the tags it fenced (the SKUs' own among them), and the regions the node holds. */
async function fencePurge(session: EdgeRedisSession, sync: NodeSync, p: Purge, now: number): Promise<{ tags: string[]; regions: string[] }> {
  const prefix = session.cfg.redisKeyPrefix;
  const tags = [...new Set([...p.tags, ...p.skus.map((s) => `sku:${s}`)])];
  const keys = [sync.logKey, regionsKey(prefix), ...tags.map((t) => tagFenceKey(prefix, t)), ...p.skus.map((s) => copyKey(prefix, s))];
  const args = [sync.processId, sync.logMinId(now), now, p.soft ? "1" : "", FENCE_MS, tags.length, p.region ?? "", tags.join(" "), p.tags.length > 0 ? copiesKey(prefix) : ""];
  const regions = await session.exchange((c) => withStoreScripts(c).purgeFence(keys.length, ...keys, ...args), { timeoutMs: exchangeTimeoutMs(session.cfg, tags.length) });
  return { tags, regions };
}

/** `s` with Redis's glob characters escaped, for a MATCH pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

export class RedisStore implements AggregateStore {
  readonly kind = "redis";
  readonly scope = "node";
  readonly memoryHoldMs = null;

  constructor(
    private readonly session: EdgeRedisSession,
    private readonly sync: NodeSync,
    private readonly graceSeconds: number,
    /** The node's rules version: an entry computed by other rules is stale (SPEC §9). */
    private readonly rules: string,
  ) {}

  private get prefix(): string {
    return this.session.cfg.redisKeyPrefix;
  }

  private redisKey(k: StoreKey): string {
    return aggregateKey(this.prefix, k.sku, k.region);
  }

  /**
   * Reads each key's aggregate, purge fences applied, and with `records`,
   * where it is absent, the SKU's records and the region's copy, in the same
   * round trip: the read-through computation that follows finds them in
   * `session.prefetched` instead of asking Redis again. A warmed key costs
   * no record read; a look costs none at all. An entry stale within its
   * validity (soft-purged, or of other rules) is claimed for recomputation
   * by the first read of the node that finds it; to every other read it is
   * `claimedElsewhere` until the claim lapses.
   */
  async getMany(keys: readonly StoreKey[], records: boolean): Promise<(CachedAggregate | null)[]> {
    if (keys.length === 0) return [];
    const p = this.prefix;
    const aggKeys = keys.map((k) => this.redisKey(k));
    const recordKeys = records ? keys.map((k) => [stockKey(p, k.sku), priceKey(p, k.sku), copyKey(p, k.sku)] as const) : undefined;
    const read = await this.session.exchange((c) => getAggregates(c, p, aggKeys, recordKeys, this.rules), { timeoutMs: exchangeTimeoutMs(this.session.cfg, keys.length) });
    return keys.map((k, i) => {
      const rec = read.records[i];
      if (rec) {
        metrics.recordReads.inc();
        this.session.prefetched.set(k.sku, edgeRecordsOf(rec[0], rec[1], rec[2], read.copiesPurgedAt));
      }
      const { value, stale, claimedElsewhere } = read.stored[i]!;
      // A damaged aggregate is a miss (with `records`, its records were not read: the computation reads them).
      const entry = value && value.length > 0 ? decodeEntry(value.toString("utf8")) : null;
      if (entry && stale) entry.soft = stale;
      if (entry && claimedElsewhere) entry.claimedElsewhere = true;
      return entry;
    });
  }

  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<StoreWrite[]> {
    if (items.length === 0) return [];
    const regions = [...new Set(items.map((i) => i.key.region))];
    const keys: string[] = [this.sync.logKey, regionsKey(this.prefix)];
    const args: (string | number)[] = [announce ? this.sync.processId : "", this.sync.logMinId(now), tagFenceKey(this.prefix, ""), regions.length, ...regions];
    for (const { key, entry } of items) {
      keys.push(this.redisKey(key));
      const removal = entry.segments.length === 0;
      args.push(entry.basis, removal ? 1 : keepMs(entry, now, this.graceSeconds), removal ? "" : encodeEntry(entry), this.sync.logEntryKey(key.mem), removal ? `sku:${key.sku}` : entryTags(entry));
    }
    const out = await this.session.exchange((c) => withStoreScripts(c).putIfNewer(keys.length, ...keys, ...args), { timeoutMs: exchangeTimeoutMs(this.session.cfg, items.length) });
    if (!Array.isArray(out) || out.length !== items.length) throw new EdgeRedisError(`aggregate write answered ${Array.isArray(out) ? out.length : 0} results for ${items.length} items`);
    return out.map((v) => STORE_WRITES[String(v)] ?? "superseded");
  }

  async purge(p: Purge, now: number, fenced: () => void): Promise<number> {
    const prefix = this.prefix;
    const { tags, regions } = await fencePurge(this.session, this.sync, p, now);
    fenced();
    if (p.tags.length === 0) {
      // SKUs only: their keys are known (in the region, or in every region the node holds).
      const aggKeys = p.skus.flatMap((sku) => (p.region !== null ? [p.region] : regions).map((r) => aggregateKey(prefix, sku, r)));
      let n = 0;
      for (let i = 0; i < aggKeys.length; i += PURGE_SCAN_COUNT) {
        const slice = aggKeys.slice(i, i + PURGE_SCAN_COUNT);
        n += await this.session.exchange((c) => (p.soft ? c.exists(...slice) : c.del(...slice)), { timeoutMs: exchangeTimeoutMs(this.session.cfg, slice.length) });
      }
      return n;
    }
    const pattern = `${globEscape(prefix)}*:agg:${p.region !== null ? globEscape(p.region) : "*"}`;
    let cursor = "0";
    let n = 0;
    do {
      const [next, count] = await this.session.exchange((c) => withStoreScripts(c).purgeScan(0, cursor, pattern, PURGE_SCAN_COUNT, now, p.soft ? "" : "1", ...tags), { timeoutMs: exchangeTimeoutMs(this.session.cfg, PURGE_SCAN_COUNT) });
      cursor = String(next);
      n += Number(count);
    } while (cursor !== "0");
    return n;
  }
}

const KEY_ORIGIN = "https://edge-prewarm.internal";
const H_SEGMENTS = "X-Segments";
const H_BASIS = "X-Basis";
const H_RULES = "X-Rules";
const H_GLOBAL_AT = "X-Global-At";
const H_HELD_UNTIL = "X-Held-Until";

export function cacheApiKey(sku: string, region: string): Request {
  return new Request(`${KEY_ORIGIN}/v1/skus/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`);
}

/** The global tier behind a data centre's Cache API, and what the store needs for it. */
export interface GlobalTier {
  tier: KvTier;
  /** How long a Cache API copy (and a memory copy) is kept before KV is read again (s): `LOCAL_COPY_TTL_SECONDS`. */
  localCopyTtlSeconds: number;
  /** Runs work after the response (`ctx.waitUntil`): a copy read from KV is put in the Cache API behind it. */
  background: (work: Promise<unknown>) => void;
}

/**
 * The Cache API as the shared store. It has no batch calls: a batch is
 * written CACHE_API_CONCURRENCY puts at a time, and the change-log entry
 * follows once all are written (before that, another isolate that dropped its
 * hot copy could read the old one back). It has no conditional write either:
 * here only the isolate's own memory is kept from older results (by
 * generation, `NodeSync.mayKeep`); the fence of a purge holds on the Redis
 * store, and on KV's entries when there is a global tier.
 *
 * The Cache API keeps what it holds in its data centre. With a global tier
 * (Workers KV), a prewarm writes each entry to both; a read that misses the
 * Cache API reads KV (fences applied) and puts what it found in the Cache
 * API; every copy a data centre holds, in the Cache API or in memory, lives
 * at most `localCopyTtlSeconds`, so a purge made in another data centre is
 * served as HIT here for at most KV's propagation + that.
 */
export class CacheApiStore implements AggregateStore {
  readonly kind = "cache-api";
  /** Keys found soft-purged in KV by this request: their recomputation replaces them in KV too (else every data centre would recompute them until they expire). */
  private readonly replaceGlobally = new Set<MemKey>();

  constructor(
    private readonly cache: Cache | Promise<Cache>,
    private readonly session: EdgeRedisSession,
    private readonly sync: NodeSync,
    private readonly graceSeconds: number,
    private readonly global: GlobalTier | null = null,
  ) {}

  get memoryHoldMs(): number | null {
    return this.global ? this.global.localCopyTtlSeconds * 1000 : null;
  }

  get scope(): StoreScope {
    return this.global ? "global" : "data-centre";
  }

  /** With a global tier, what a read (not a look: `records` false) finds in KV is also put in this data centre's Cache API. */
  async getMany(keys: readonly StoreKey[], records: boolean): Promise<(CachedAggregate | null)[]> {
    const found = await Promise.all(keys.map((k) => this.get(k)));
    const g = this.global;
    if (!g) return found;
    const now = Date.now();
    // A Cache API copy past its time (kept longer than its max-age) is not used: KV is read again.
    const missing = keys.flatMap((_, i) => {
      const e = found[i];
      if (e && (e.heldUntil === undefined || e.heldUntil > now)) return [];
      found[i] = null;
      return [i];
    });
    if (missing.length > 0) {
      let fromKv: (CachedAggregate | null)[] = [];
      try {
        fromKv = await g.tier.getMany(missing.map((i) => keys[i]!));
      } catch (e) {
        // KV down: this data centre goes on with what its Cache API holds.
        if (!(e instanceof GlobalTierError)) throw e;
      }
      missing.forEach((i, j) => {
        const e = fromKv[j];
        if (!e) return;
        found[i] = e;
        if (!records) return; // a look stores nothing
        if (e.soft) this.replaceGlobally.add(keys[i]!.mem);
        else g.background(this.put({ key: keys[i]!, entry: e }, now).catch(() => undefined));
      });
    }
    // A copy from KV is held as long as a Cache API copy of it; one from the Cache API, no longer than that copy.
    const heldUntil = now + g.localCopyTtlSeconds * 1000;
    for (const e of found) if (e) e.heldUntil = Math.min(heldUntil, e.heldUntil ?? heldUntil);
    return found;
  }

  private async get(k: StoreKey): Promise<CachedAggregate | null> {
    const res = await (await this.cache).match(cacheApiKey(k.sku, k.region));
    if (!res) return null;
    const meta = parseMeta(res.headers.get(H_SEGMENTS));
    if (!meta) {
      // Not an entry of ours (or a damaged one): treat it as absent.
      await res.body?.cancel();
      return null;
    }
    const segments = entryOf(meta, await res.text(), res.headers.get(H_RULES) ?? "");
    if (!segments) return null;
    const entry: CachedAggregate = { segments, basis: Number(res.headers.get(H_BASIS)) || 0 };
    const globalAt = Number(res.headers.get(H_GLOBAL_AT));
    if (globalAt > 0) entry.globalAt = globalAt;
    const heldUntil = Number(res.headers.get(H_HELD_UNTIL));
    if (heldUntil > 0) entry.heldUntil = heldUntil;
    return entry;
  }

  /**
   * Writes the items to the Cache API and, with a global tier, a prewarm's
   * (`announce`) and the recomputations of keys found soft-purged in KV to
   * KV first (so the Cache API copy says when it is global). A KV write that
   * fails leaves its entry in this data centre only (no `globalAt`).
   */
  async putMany(items: readonly StoreItem[], now: number, announce: boolean): Promise<StoreWrite[]> {
    const toKv = !this.global ? [] : announce ? items : items.filter((i) => this.replaceGlobally.has(i.key.mem));
    if (toKv.length > 0) await this.global!.tier.putMany(toKv, now);
    await inBatches(items, (i) => this.put(i, now));
    if (announce) await this.announce(items.map((i) => i.key.mem));
    return items.map(() => "written");
  }

  async put({ key, entry }: StoreItem, now: number): Promise<void> {
    const cache = await this.cache;
    if (entry.segments.length === 0) {
      await cache.delete(cacheApiKey(key.sku, key.region));
      return;
    }
    const keep = Math.ceil(keepMs(entry, now, this.graceSeconds) / 1000);
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      "Cache-Control": `public, max-age=${this.global ? Math.min(keep, this.global.localCopyTtlSeconds) : keep}`,
      [H_SEGMENTS]: JSON.stringify(metaOf(entry)),
      [H_BASIS]: String(entry.basis),
      [H_RULES]: entry.segments[0]?.rules ?? "",
    };
    if (entry.globalAt !== undefined) headers[H_GLOBAL_AT] = String(entry.globalAt);
    // When this copy's time is up (the Cache API's max-age is whole seconds, and may be kept longer by it).
    if (this.global) headers[H_HELD_UNTIL] = String(now + this.global.localCopyTtlSeconds * 1000);
    await cache.put(cacheApiKey(key.sku, key.region), new Response(entry.segments.map((s) => s.json).join(""), { headers }));
  }

  /**
   * Without a global tier the Cache API can be neither searched by tag nor
   * marked stale: a purge here names SKUs and is hard. With one, the tags
   * (the SKUs' own among them) are fenced in KV, hard or soft, and every
   * data centre applies the fences to what it reads from KV. Either way the
   * fences and change-log entry go to the edge Redis as on a self-hosted
   * node (when it is down, the other isolates stop trusting their memory:
   * nothing purged is served from it), and this data centre's Cache API
   * copies of the SKUs are deleted (by tag they cannot be found: they live
   * at most `localCopyTtlSeconds`).
   */
  async purge(p: Purge, now: number, fenced: () => void): Promise<number> {
    const g = this.global;
    if (!g && (p.tags.length > 0 || p.soft)) throw new PurgeUnsupportedError("purge by tag and soft purge need the node's aggregates in its edge Redis (AGGREGATE_STORE=redis), or Workers KV behind the Cache API (bind AGGREGATES_KV)");
    const tags = [...new Set([...p.tags, ...p.skus.map((s) => `sku:${s}`)])];
    // Refused before anything is purged: KV would not take it all.
    if (g && tags.length > MAX_GLOBAL_FENCES) throw new GlobalPurgeTooLargeError(`a purge on Cloudflare writes one Workers KV fence per tag and per SKU: at most ${MAX_GLOBAL_FENCES} per request, got ${tags.length} (split it)`);
    let regions = p.region !== null ? [p.region] : [this.session.cfg.edgeRegion];
    let told = false;
    try {
      const known = await fencePurge(this.session, this.sync, p, now);
      fenced();
      told = true;
      if (p.region === null) regions = [...new Set([...regions, ...known.regions])];
    } catch (e) {
      if (!(e instanceof EdgeRedisError)) throw e;
    }
    const deleteLocal = async (): Promise<number> => {
      const cache = await this.cache;
      return (await Promise.all(p.skus.flatMap((sku) => regions.map((r) => cache.delete(cacheApiKey(sku, r)))))).filter(Boolean).length;
    };
    let inKv = 0;
    try {
      if (g) {
        inKv = await g.tier.purge(tags, p.skus.flatMap((sku) => regions.map((r) => storeKey(sku, r))), p.soft, now);
        if (!told) fenced();
      }
    } catch (e) {
      // KV did not take it (the purge answers an error): this data centre's own copies go all the same.
      await deleteLocal();
      throw e;
    }
    return Math.max(inKv, await deleteLocal());
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
  const failed = await eachInLanes(items, CACHE_API_CONCURRENCY, fn);
  if (failed.length > 0) throw new AggregateError(failed.map((f) => f.error), `${failed.length} of ${items.length} cache writes failed`);
}

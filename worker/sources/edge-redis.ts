/**
 * The local edge Redis (L1): raw record bytes for a batch in one round trip,
 * and the node's shared state (aggregates, change log, metrics) kept beside
 * them. Record values are returned as stored (MessagePack) and never decoded
 * here; the rules module owns their meaning.
 *
 * A connection lives for one request only (workerd forbids I/O on a socket
 * opened by another request), but one request opens at most one: every
 * exchange of the request goes through its `EdgeRedisSession`, which
 * connects on first use and closes once the request and its background work
 * are done.
 */
import Redis from "ioredis";
import { priceKey, stockKey } from "../../records/keys";
import type { Config } from "../config";
import { metrics } from "../metrics";

export interface RecordPair {
  stock: Uint8Array | null;
  price: Uint8Array | null;
}

/** A SKU's edge records and, where the read asked for it, the region's copy kept beside them (`copyKey`). */
export interface EdgeRecords extends RecordPair {
  /** The region's copy: both records as the region gave them (both null: the region did not know the SKU); null when none is kept. */
  copy: RecordPair | null;
}

const NIL = 0xffffffff;

/**
 * The region's copy of a SKU as one value: when it was asked for (ms, in
 * decimal, and a newline: a purge by tag ignores every copy asked for before
 * it, `copiesKey`), then each record as a 4-byte length (NIL for none) and
 * its bytes.
 */
export function encodeCopy(r: RecordPair, asked: number): Buffer {
  const part = (b: Uint8Array | null): Buffer[] => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b === null || b.byteLength === 0 ? NIL : b.byteLength);
    return b === null || b.byteLength === 0 ? [len] : [len, Buffer.from(b.buffer, b.byteOffset, b.byteLength)];
  };
  return Buffer.concat([Buffer.from(`${asked}\n`), ...part(r.stock), ...part(r.price)]);
}

/** The copy a value holds, unless it was asked for at or before `notAfter`; null when it is not one (the copy is then ignored, and the region asked again). */
export function decodeCopy(v: Buffer, notAfter = 0): RecordPair | null {
  const nl = v.indexOf(0x0a);
  const asked = nl > 0 && nl <= 16 ? Number(v.subarray(0, nl).toString("latin1")) : NaN;
  if (!Number.isSafeInteger(asked) || asked <= notAfter) return null;
  let o = nl + 1;
  const part = (): Uint8Array | null | undefined => {
    if (o + 4 > v.length) return undefined;
    const n = v.readUInt32BE(o);
    o += 4;
    if (n === NIL) return null;
    if (o + n > v.length) return undefined;
    const b = v.subarray(o, o + n);
    o += n;
    return b;
  };
  const stock = part();
  const price = part();
  return stock === undefined || price === undefined || o !== v.length ? null : { stock, price };
}

/** The process is at EDGE_REDIS_MAX_SESSIONS: the request is refused before any I/O (503 `overloaded`). */
export class OverloadedError extends Error {
  override readonly name = "OverloadedError";
}

/** The edge Redis failed or did not answer within `edgeRedisTimeoutMs`. */
export class EdgeRedisError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgeRedisError";
  }
}

export { priceKey, stockKey };

/** A warmed aggregate in the node's shared store: beside the SKU's records. */
export function aggregateKey(prefix: string, sku: string, region: string): string {
  return `${prefix}${sku}:agg:${region}`;
}

/** A process's short claim to fetch a SKU from the region for the whole node. */
export function leaseKey(prefix: string, sku: string, region: string): string {
  return `${prefix}${sku}:lease:${region}`;
}

/**
 * The region's copy of a SKU's two records, kept by the process that fetched
 * them (REGIONAL_REFILL_TTL_SECONDS) for the node's other processes and later
 * misses. Apart from the feed's record keys: a copy is never mistaken for
 * the edge's own records (an aggregate computed from it says `regional`), a
 * purge drops it, and the feed's records are never touched.
 */
export function copyKey(prefix: string, sku: string): string {
  return `${prefix}${sku}:regional`;
}

/**
 * A tag's purge fences (SPEC §9): `"H S"`, the times (ms) of its last hard
 * and soft purge (0: none). A SKU's own tag is `sku:{sku}`. Nothing made from
 * records read at or before a fence is written after it; a stored aggregate
 * with a tag fenced at or after its basis is absent (hard) or stale (soft)
 * to every read. Kept for FENCE_MS: past any stored aggregate's life.
 */
export function tagFenceKey(prefix: string, tag: string): string {
  return `${prefix}_tag:${tag}`;
}

/** The regions the node holds aggregates in (a set), for a purge of SKUs in every region. */
export function regionsKey(prefix: string): string {
  return `${prefix}_node:regions`;
}

/**
 * The time of the node's last purge by tag (ms): every region's copy asked
 * for at or before it is ignored and not written (a copy's records may carry
 * a purged tag, and its tags are not known without decoding them).
 */
export function copiesKey(prefix: string): string {
  return `${prefix}_node:copies`;
}

/** How long a fence is kept (ms): the longest TTL a prewarm can set, plus a day for the stale graces. */
export const FENCE_MS = 2 * 86_400_000;

/**
 * How long after its records were read a computation may still write (ms);
 * past it, it writes nothing. Far above any read's or batch's budget.
 */
export const WRITE_WITHIN_MS = 30_000;

/** Lua: the hard and soft purge times of a fence value (`tagFenceKey`). */
export const LUA_FENCE = `local function fence(v)
  if not v then return 0, 0 end
  local h, s = string.match(v, '^(%d+) (%d+)$')
  return tonumber(h) or 0, tonumber(s) or 0
end`;

/** Whether a computation whose records were read at `basis` may still write at `now` (its fence may have expired past that). */
export function mayWrite(basis: number, now: number): boolean {
  return now - basis < WRITE_WITHIN_MS;
}

/**
 * Keys of the node's own state. SKU ids cannot start with `_`, so these never
 * meet a `{prefix}{sku}:…` key.
 */
export function nodeKey(prefix: string, what: "changes" | "metrics" | "procs" | `proc:${string}`): string {
  return `${prefix}_node:${what}`;
}

/**
 * Bounds an exchange. Written by hand rather than with cockatiel's timeout
 * policy (which the regional client uses): on the miss path, three exchanges
 * a read, cockatiel's per-call AbortController, events and race cost the node
 * ~10 % of its miss capacity (2026-11-29, 2 processes, 16 connections, random
 * keys of 60,000: 708–727 reads/s with cockatiel, 776–812 with this).
 */
async function withTimeout<T>(work: () => Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EdgeRedisError(`edge Redis timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work(), timeout]).finally(() => clearTimeout(timer));
}

export interface ExchangeOptions {
  /** Bound on the exchange (connect included). @default cfg.edgeRedisTimeoutMs */
  timeoutMs?: number;
  /**
   * A request's own work with records and aggregates: counted in
   * edge_redis_roundtrips_total / edge_redis_errors_total, and refused when
   * the isolate is at EDGE_REDIS_MAX_SESSIONS. The node's housekeeping (sync,
   * health) is neither. @default true
   */
  counted?: boolean;
}

/** Sessions of this isolate that hold (or are opening) a connection for a request's own work. */
let busySessions = 0;

/** The request's connection to the edge Redis, opened on first use. */
export class EdgeRedisSession {
  private client: Redis | null = null;
  private connecting: Promise<Redis> | null = null;
  private active = 0;
  private released = false;
  /** Whether this session counts in `busySessions`. */
  private busy = false;
  /**
   * Records read along with the aggregates they would feed (a store lookup
   * that missed), by SKU: a read-through computation in the same request
   * uses them instead of a second round trip.
   */
  readonly prefetched = new Map<string, EdgeRecords>();

  constructor(readonly cfg: Config) {}

  /**
   * Runs one exchange (a command, a pipeline, a script). It is bounded by the
   * timeout, connect included, since ioredis's connectTimeout does not fire in
   * workerd. Any failure becomes an EdgeRedisError and drops the connection:
   * the next exchange opens a fresh one.
   */
  async exchange<T>(fn: (client: Redis) => Promise<T>, options: ExchangeOptions = {}): Promise<T> {
    const { timeoutMs = this.cfg.edgeRedisTimeoutMs, counted = true } = options;
    if (counted && !this.busy) {
      // Admission: past its capacity an isolate says so before any I/O, rather than let requests time out inside.
      if (busySessions >= this.cfg.edgeRedisMaxSessions) {
        metrics.shed.inc();
        throw new OverloadedError(`this node is at capacity (${this.cfg.edgeRedisMaxSessions} requests at work with its Redis per process); retry shortly`);
      }
      busySessions++;
      this.busy = true;
    }
    if (counted) metrics.redisRoundtrips.inc();
    this.active++;
    try {
      return await withTimeout(() => this.connected().then((c) => fn(c)), timeoutMs);
    } catch (e) {
      if (counted) metrics.redisErrors.inc();
      this.drop();
      throw e instanceof EdgeRedisError ? e : new EdgeRedisError(`edge Redis: ${(e as Error).message ?? String(e)}`, { cause: e });
    } finally {
      this.active--;
      if (this.released && this.active === 0) this.drop();
    }
  }

  /** The request has answered: close once no exchange is running (background work may still start one). */
  release(): void {
    this.released = true;
    if (this.active === 0) this.drop();
  }

  private connected(): Promise<Redis> {
    if (this.connecting) return this.connecting;
    const client = new Redis(this.cfg.edgeRedisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      // No INFO before the first command: one round trip less per connection.
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      commandTimeout: this.cfg.edgeRedisTimeoutMs * 10,
    });
    // Without a listener ioredis reports connection errors as unhandled events.
    client.on("error", () => {});
    this.client = client;
    this.connecting = client.connect().then(() => client);
    this.connecting.catch(() => {});
    return this.connecting;
  }

  private drop(): void {
    this.client?.disconnect();
    this.client = null;
    this.connecting = null;
    if (this.busy && this.active === 0) {
      busySessions--;
      this.busy = false;
    }
  }
}

/**
 * The bound on an exchange about `skus` SKUs: EDGE_REDIS_TIMEOUT_MS per
 * started 100 SKUs. A read of one SKU must be quick, but a 1,000-SKU prewarm
 * pipeline moves 2,000 values and shares the isolate with other batches;
 * holding it to a read's budget would send healthy batches to the region.
 */
export function exchangeTimeoutMs(cfg: Config, skus: number): number {
  return cfg.edgeRedisTimeoutMs * Math.max(1, Math.ceil(skus / 100));
}

/**
 * GETs every key in one command and one round trip. A key holding another
 * type (a hash, a list...) answers '' rather than failing the batch: zero
 * bytes never decode, so that SKU alone becomes invalid_record (MGET would
 * answer nil, as if the record were missing). One command instead of a
 * pipeline of 2 x N GETs: ioredis's per-command work (a Command object, a
 * promise, a timer) cost more of the isolate's thread than Redis took.
 */
const GET_ALL = `local out = {}
for i = 1, #KEYS do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then v = '' end
  out[i] = v
end
return out`;

/**
 * For each group of keys (the aggregate, and with a stride of 4 its stock,
 * price and regional copy): the aggregate unless a tag of it was purged
 * hard since its basis (fences, `tagFenceKey`), and only where it is absent
 * the other keys (a read of a warmed key reads no record; a miss gets its
 * records in the same round trip; a look, stride 1, names no record key at
 * all), then its state: 's' when a tag of it was purged soft since its
 * basis, else 'r' when rules other than ARGV[5] computed it, else ''. A read
 * (stride 4) of such a stale entry also claims its revalidation for the node
 * (`revalidationKey`, for ARGV[4] ms): the one read that gets the claim
 * recomputes it; every other read, in any process, is answered 'S' or 'R'
 * and serves it stale without recomputing. A claim names what made the
 * entry stale (its latest soft fence, or the rules of the node that claimed
 * it), so it holds only for that: an entry made stale again by a later soft
 * purge, or found by a process of other rules (during a roll), is claimed
 * afresh rather than left to a recomputation already done. A stored aggregate starts with
 * `basis<TAB>tags<TAB>rules<LF>`.
 * ARGV: the fence key prefix, the stride, the copies key (`copiesKey`,
 * whose value ends the answer when records are read), the claim's life (ms),
 * the node's rules version.
 */
const GET_AGGREGATES = `${LUA_FENCE}
local stride = tonumber(ARGV[2])
local claimMs = tonumber(ARGV[4]) or 0
local out = {}
local n = 0
for i = 1, #KEYS, stride do
  local a = redis.pcall('GET', KEYS[i])
  if type(a) == 'table' then a = false end
  local state, cause, softAt = '', '', 0
  if a then
    local head = string.match(a, '^[^\\n]*')
    local basis = tonumber(string.match(head, '^(%d+)\\t'))
    local tags = string.match(head, '^%d+\\t([^\\t]*)')
    if basis and tags then
      for t in string.gmatch(tags, '%S+') do
        local h, s = fence(redis.call('GET', ARGV[1] .. t))
        if h >= basis then a = false state = '' break end
        if s >= basis then
          state = 's'
          if s > softAt then softAt = s end
        end
      end
      if state == 's' then cause = 's' .. softAt end
      if a and state == '' and ARGV[5] and ARGV[5] ~= '' and string.match(head, '^%d+\\t[^\\t]*\\t(.*)$') ~= ARGV[5] then
        state = 'r'
        cause = 'r' .. ARGV[5]
      end
    end
    if state ~= '' and stride > 1 and claimMs > 0 then
      local p, r = string.match(KEYS[i], '^(.*):agg:([^:]*)$')
      if p then
        local k = p .. ':rv:' .. r
        if redis.call('GET', k) == cause then
          state = string.upper(state)
        else
          -- A failed SET (a full or read-only Redis) leaves the claim untaken: this read recomputes, as before claims.
          redis.pcall('SET', k, cause, 'PX', claimMs)
        end
      end
    end
  end
  out[n + 1] = a
  for j = 1, stride - 1 do
    local v = false
    if not a then
      v = redis.pcall('GET', KEYS[i + j])
      if type(v) == 'table' then v = '' end
    end
    out[n + 1 + j] = v
  end
  out[n + stride + 1] = state
  n = n + stride + 1
end
if stride > 1 then out[n + 1] = redis.call('GET', ARGV[3]) end
return out`;

const READ_SCRIPTS = { getAll: GET_ALL, getAggregates: GET_AGGREGATES } as const;

/** ioredis's typing of the commands `defineCommand` adds (their Buffer variants). */
type ScriptedClient = Redis & Record<`${keyof typeof READ_SCRIPTS}Buffer`, (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<(Buffer | null)[]>>;

/** Runs a read script over `keys` in one command (EVALSHA, falling back to EVAL once when the server lacks it); `answers` values in all (one per key unless said). */
async function readScript(client: Redis, name: keyof typeof READ_SCRIPTS, keys: readonly string[], args: readonly (string | number)[] = [], answers = keys.length): Promise<(Buffer | null)[]> {
  if (!(name in client)) client.defineCommand(name, { lua: READ_SCRIPTS[name] });
  const values = await (client as ScriptedClient)[`${name}Buffer`](keys.length, ...keys, ...args);
  if (!Array.isArray(values) || values.length !== answers) {
    throw new EdgeRedisError(`edge Redis answered ${Array.isArray(values) ? values.length : 0} values for ${answers} reads`);
  }
  return values;
}

/** Why a stored aggregate is stale though within its validity (SPEC §9): a soft purge, or other rules computed it. */
export type StaleCause = "purged" | "rules";

/**
 * A stored aggregate as read: its bytes (null where absent or purged hard),
 * whether it is stale and why, and whether another read of the node holds
 * its revalidation (`revalidationKey`).
 */
export interface StoredRead {
  value: Buffer | null;
  stale: StaleCause | null;
  claimedElsewhere: boolean;
}

/**
 * The claim on recomputing a stale aggregate (`{prefix}{sku}:rv:{region}`),
 * taken by the read script: one recomputation per node, not one per
 * process. Not a `:agg:` key, so no SCAN of aggregates meets it.
 */
export function revalidationKey(prefix: string, sku: string, region: string): string {
  return `${prefix}${sku}:rv:${region}`;
}

/** How long a claim on recomputing a stale aggregate lasts (ms): past it, another read may try (the first may have failed). */
export const REVALIDATION_CLAIM_MS = 2_000;

const STALE_STATES: Record<string, { stale: StaleCause | null; claimedElsewhere: boolean }> = {
  "": { stale: null, claimedElsewhere: false },
  s: { stale: "purged", claimedElsewhere: false },
  r: { stale: "rules", claimedElsewhere: false },
  S: { stale: "purged", claimedElsewhere: true },
  R: { stale: "rules", claimedElsewhere: true },
};

/**
 * The aggregates of `aggKeys`, fences applied (`GET_AGGREGATES`), and with
 * `records` (each SKU's stock, price and copy keys) the records of those
 * absent, in one round trip.
 */
export async function getAggregates(client: Redis, prefix: string, aggKeys: readonly string[], records: readonly (readonly [string, string, string])[] | undefined, rules: string): Promise<{ stored: StoredRead[]; records: ((Buffer | null)[] | null)[]; copiesPurgedAt: number }> {
  const stride = records ? 4 : 1;
  const keys = records ? aggKeys.flatMap((k, i) => [k, ...records[i]!]) : aggKeys;
  const values = await readScript(client, "getAggregates", keys, [tagFenceKey(prefix, ""), stride, copiesKey(prefix), REVALIDATION_CLAIM_MS, rules], aggKeys.length * (stride + 1) + (records ? 1 : 0));
  const stored: StoredRead[] = [];
  const recs: ((Buffer | null)[] | null)[] = [];
  for (let i = 0; i < aggKeys.length; i++) {
    const o = i * (stride + 1);
    const value = values[o] ?? null;
    stored.push({ value, ...(STALE_STATES[values[o + stride]?.toString("latin1") ?? ""] ?? STALE_STATES[""]!) });
    recs.push(records && value === null ? values.slice(o + 1, o + stride) : null);
  }
  return { stored, records: recs, copiesPurgedAt: records ? copiesPurgedAt(values[values.length - 1]) : 0 };
}

/** The values of `keys` as stored. */
export function getAll(client: Redis, keys: readonly string[]): Promise<(Buffer | null)[]> {
  return readScript(client, "getAll", keys);
}

/** The record pair (and copy) of a SKU from its values as read: stock, price and, when asked for, the region's copy. */
export function edgeRecordsOf(stock: Buffer | null | undefined, price: Buffer | null | undefined, copy: Buffer | null | undefined, copiesPurgedAt: number): EdgeRecords {
  return { stock: stock ?? null, price: price ?? null, copy: copy ? decodeCopy(copy, copiesPurgedAt) : null };
}

/** The time of the last purge by tag, as read with `copiesKey` (0: none). */
export function copiesPurgedAt(v: Buffer | null | undefined): number {
  return Number(v?.toString("latin1") ?? 0) || 0;
}

/**
 * Reads both records of every SKU in one round trip (none when this request
 * has just read them all), and with `copies` the region's copy kept beside
 * them: a read-through computation uses a copy; a prewarm asks the region
 * afresh for what the edge lacks.
 */
export async function readRecords(session: EdgeRedisSession, skus: readonly string[], copies: boolean): Promise<EdgeRecords[]> {
  if (skus.length === 0) return [];
  if (copies && skus.every((sku) => session.prefetched.has(sku))) {
    const pairs = skus.map((sku) => session.prefetched.get(sku)!);
    for (const sku of skus) session.prefetched.delete(sku);
    return pairs;
  }
  const { cfg } = session;
  const p = cfg.redisKeyPrefix;
  return session.exchange(
    async (client) => {
      const keys: string[] = [];
      for (const sku of skus) {
        keys.push(stockKey(p, sku), priceKey(p, sku));
        if (copies) keys.push(copyKey(p, sku));
      }
      if (copies) keys.push(copiesKey(p));
      const values = await getAll(client, keys);
      metrics.recordReads.inc({}, skus.length);
      const n = copies ? 3 : 2;
      const purgedAt = copies ? copiesPurgedAt(values[values.length - 1]) : 0;
      return skus.map((_, i) => edgeRecordsOf(values[n * i], values[n * i + 1], copies ? values[n * i + 2] : null, purgedAt));
    },
    { timeoutMs: exchangeTimeoutMs(cfg, skus.length) },
  );
}

/**
 * Keeps the region's copy of each fetched SKU (`copyKey`) for `ttlSeconds`,
 * and a note that the region does not know a SKU for `unknownTtlMs` (so that
 * the node's processes waiting on this fetch get the answer, not half of
 * it). Refused for a SKU purged since `basis`, when the records were asked
 * for (its fence is newer), and for every SKU after a purge by tag since
 * (`copiesKey`): a purge is never undone by a fetch that started before it.
 * The feed's record keys are never written. One round trip.
 * KEYS: (copy, the SKU's tag fence) pairs, then the copies key. ARGV: basis,
 * then (value, px) pairs.
 */
const KEEP_COPIES = `${LUA_FENCE}
local basis = tonumber(ARGV[1])
if basis <= tonumber(redis.call('GET', KEYS[#KEYS]) or '0') then return 0 end
for i = 1, #KEYS - 1, 2 do
  local h, s = fence(redis.call('GET', KEYS[i + 1]))
  if h < basis and s < basis then redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[i + 2]) end
end
return 1`;

export async function keepRegionalCopies(session: EdgeRedisSession, fetched: ReadonlyMap<string, RecordPair>, unknown: readonly string[], basis: number, ttlSeconds: number, unknownTtlMs: number): Promise<void> {
  const { cfg } = session;
  const p = cfg.redisKeyPrefix;
  const keys: string[] = [];
  const args: (string | Buffer | number)[] = [basis];
  for (const [sku, r] of fetched) {
    keys.push(copyKey(p, sku), tagFenceKey(p, `sku:${sku}`));
    args.push(encodeCopy(r, basis), ttlSeconds * 1000);
  }
  for (const sku of unknown) {
    keys.push(copyKey(p, sku), tagFenceKey(p, `sku:${sku}`));
    args.push(encodeCopy({ stock: null, price: null }, basis), unknownTtlMs);
  }
  if (keys.length === 0) return;
  keys.push(copiesKey(p));
  await session.exchange(
    async (client) => {
      if (!("keepCopies" in client)) client.defineCommand("keepCopies", { lua: KEEP_COPIES });
      await (client as Redis & { keepCopies(numKeys: number, ...args: (string | Buffer | number)[]): Promise<number> }).keepCopies(keys.length, ...keys, ...args);
    },
    { timeoutMs: exchangeTimeoutMs(cfg, keys.length / 2) },
  );
}

/** Takes a lease of `ttlMs` on each SKU for this region (SET NX PX, one round trip); true where this process got it. */
export async function takeLeases(session: EdgeRedisSession, region: string, skus: readonly string[], ttlMs: number): Promise<boolean[]> {
  const { cfg } = session;
  return session.exchange(async (client) => {
    const p = client.pipeline();
    for (const sku of skus) p.set(leaseKey(cfg.redisKeyPrefix, sku, region), "1", "PX", ttlMs, "NX");
    const out = await p.exec();
    if (!out) throw new EdgeRedisError("edge Redis discarded the lease pipeline");
    return out.map(([err, v]) => err === null && v === "OK");
  });
}

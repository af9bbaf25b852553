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
  readonly prefetched = new Map<string, RecordPair>();

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
 * For each (aggregate, stock, price) key triple: the aggregate, or, only
 * where it is absent, the two records (a read of a warmed key reads no record;
 * a miss gets its records in the same round trip).
 */
const GET_AGG_OR_RECORDS = `local out = {}
for i = 1, #KEYS, 3 do
  local a = redis.pcall('GET', KEYS[i])
  if type(a) == 'table' then a = false end
  out[i] = a
  out[i + 1] = false
  out[i + 2] = false
  if not a then
    for j = 1, 2 do
      local v = redis.pcall('GET', KEYS[i + j])
      if type(v) == 'table' then v = '' end
      out[i + j] = v
    end
  end
end
return out`;

const READ_SCRIPTS = { getAll: GET_ALL, getAggOrRecords: GET_AGG_OR_RECORDS } as const;

/** ioredis's typing of the commands `defineCommand` adds (their Buffer variants). */
type ScriptedClient = Redis & Record<`${keyof typeof READ_SCRIPTS}Buffer`, (numKeys: number, ...keys: string[]) => Promise<(Buffer | null)[]>>;

/** Runs a read script over `keys` in one command (EVALSHA, falling back to EVAL once when the server lacks it); one value per key. */
async function readScript(client: Redis, name: keyof typeof READ_SCRIPTS, keys: readonly string[]): Promise<(Buffer | null)[]> {
  if (!(name in client)) client.defineCommand(name, { lua: READ_SCRIPTS[name] });
  const values = await (client as ScriptedClient)[`${name}Buffer`](keys.length, ...keys);
  if (!Array.isArray(values) || values.length !== keys.length) {
    throw new EdgeRedisError(`edge Redis answered ${Array.isArray(values) ? values.length : 0} values for ${keys.length} reads`);
  }
  return values;
}

/** For each triple of `keys` (aggregate, stock, price): the aggregate, or the records where it is absent. */
export function getAggOrRecords(client: Redis, keys: readonly string[]): Promise<(Buffer | null)[]> {
  return readScript(client, "getAggOrRecords", keys);
}

/** The values of `keys` as stored. */
export function getAll(client: Redis, keys: readonly string[]): Promise<(Buffer | null)[]> {
  return readScript(client, "getAll", keys);
}

/** Reads both records of every SKU in one round trip (none when this request has just read them all). */
export async function readRecords(session: EdgeRedisSession, skus: readonly string[]): Promise<RecordPair[]> {
  if (skus.length === 0) return [];
  if (skus.every((sku) => session.prefetched.has(sku))) {
    const pairs = skus.map((sku) => session.prefetched.get(sku)!);
    for (const sku of skus) session.prefetched.delete(sku);
    return pairs;
  }
  const { cfg } = session;
  return session.exchange(
    async (client) => {
      const keys: string[] = [];
      for (const sku of skus) keys.push(stockKey(cfg.redisKeyPrefix, sku), priceKey(cfg.redisKeyPrefix, sku));
      const values = await getAll(client, keys);
      metrics.recordReads.inc({}, skus.length);
      return skus.map((_, i) => ({ stock: values[2 * i] ?? null, price: values[2 * i + 1] ?? null }));
    },
    { timeoutMs: exchangeTimeoutMs(cfg, skus.length) },
  );
}

/**
 * Fills what the edge lacks, and only that: each record is SET NX EX, so a
 * record the edge holds (written by the feed, with no TTL, perhaps newer than
 * the region's copy) is never replaced nor given a TTL. One round trip.
 */
export async function refillRecords(session: EdgeRedisSession, records: ReadonlyMap<string, RecordPair>, ttlSeconds: number): Promise<void> {
  const { cfg } = session;
  await session.exchange(
    async (client) => {
      const pipeline = client.pipeline();
      for (const [sku, r] of records) {
        if (r.stock && r.stock.byteLength > 0) pipeline.set(stockKey(cfg.redisKeyPrefix, sku), Buffer.from(r.stock), "EX", ttlSeconds, "NX");
        if (r.price && r.price.byteLength > 0) pipeline.set(priceKey(cfg.redisKeyPrefix, sku), Buffer.from(r.price), "EX", ttlSeconds, "NX");
      }
      await pipeline.exec();
    },
    { timeoutMs: exchangeTimeoutMs(cfg, records.size) },
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

/**
 * The local edge Redis (L1): raw record bytes for a batch in one pipelined
 * round trip. Values are returned as stored (MessagePack) and never decoded
 * here; the rules module owns their meaning.
 *
 * A client lives for one request only: workerd forbids I/O on a socket opened
 * by another request, so a shared client would fail or stall on the next one.
 */
import Redis from "ioredis";
import type { Config } from "./config";
import { metrics } from "./metrics";

export interface RecordPair {
  stock: Uint8Array | null;
  price: Uint8Array | null;
}

/** The edge Redis failed or did not answer within `edgeRedisTimeoutMs`. */
export class EdgeRedisError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgeRedisError";
  }
}

export function stockKey(prefix: string, sku: string): string {
  return `${prefix}${sku}:stock`;
}

export function priceKey(prefix: string, sku: string): string {
  return `${prefix}${sku}:price`;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EdgeRedisError(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `fn` with a fresh client; the whole exchange (connect included, since
 * ioredis's connectTimeout does not fire in workerd) is bounded by the timeout.
 * Any failure becomes an EdgeRedisError and is counted.
 */
export async function withEdgeRedis<T>(cfg: Config, fn: (client: Redis) => Promise<T>, timeoutMs = cfg.edgeRedisTimeoutMs): Promise<T> {
  const client = new Redis(cfg.edgeRedisUrl, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    commandTimeout: timeoutMs,
  });
  // Without a listener ioredis reports connection errors as unhandled events.
  client.on("error", () => {});
  metrics.redisRoundtrips.inc();
  try {
    return await withTimeout(
      client.connect().then(() => fn(client)),
      timeoutMs,
      "edge Redis",
    );
  } catch (e) {
    metrics.redisErrors.inc();
    throw e instanceof EdgeRedisError ? e : new EdgeRedisError(`edge Redis: ${(e as Error).message ?? String(e)}`, { cause: e });
  } finally {
    client.disconnect();
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

/** ioredis's typing of the command `defineCommand` adds (its Buffer variant). */
interface RecordReader {
  getAllBuffer(numKeys: number, ...keys: string[]): Promise<(Buffer | null)[]>;
}

/** Reads both records of every SKU in one round trip. */
export async function readRecords(cfg: Config, skus: readonly string[]): Promise<RecordPair[]> {
  if (skus.length === 0) return [];
  return withEdgeRedis(cfg, async (client) => {
    // EVALSHA, falling back to EVAL once when the server does not know the script yet.
    client.defineCommand("getAll", { lua: GET_ALL });
    const keys: string[] = [];
    for (const sku of skus) keys.push(stockKey(cfg.redisKeyPrefix, sku), priceKey(cfg.redisKeyPrefix, sku));
    const values = await (client as unknown as RecordReader).getAllBuffer(keys.length, ...keys);
    if (!Array.isArray(values) || values.length !== keys.length) {
      throw new EdgeRedisError(`edge Redis answered ${Array.isArray(values) ? values.length : 0} values for ${keys.length} reads`);
    }
    return skus.map((_, i) => ({ stock: values[2 * i] ?? null, price: values[2 * i + 1] ?? null }));
  }, exchangeTimeoutMs(cfg, skus.length));
}

/** Writes records fetched from the region into the edge Redis with a short TTL, so the next read is local. */
export async function refillRecords(cfg: Config, records: ReadonlyMap<string, RecordPair>, ttlSeconds: number): Promise<void> {
  await withEdgeRedis(cfg, async (client) => {
    const pipeline = client.pipeline();
    for (const [sku, r] of records) {
      if (r.stock && r.stock.byteLength > 0) pipeline.set(stockKey(cfg.redisKeyPrefix, sku), Buffer.from(r.stock), "EX", ttlSeconds);
      if (r.price && r.price.byteLength > 0) pipeline.set(priceKey(cfg.redisKeyPrefix, sku), Buffer.from(r.price), "EX", ttlSeconds);
    }
    await pipeline.exec();
  }, exchangeTimeoutMs(cfg, records.size));
}

/**
 * The worker's configuration (SPEC §6), read once per isolate from the
 * wrangler vars and secrets and validated up front: a bad value fails every
 * request with a precise message instead of misbehaving on some of them.
 */

import { isValidRegion } from "../contract/ids";
import { MAX_TTL_SECONDS } from "../contract/prewarm";

export interface Config {
  /** Region served by this node; the default `region` of every request. */
  edgeRegion: string;
  /** The regions this node answers for (EDGE_REGIONS, comma-separated); null = any region name. */
  edgeRegions: readonly string[] | null;
  /** @default "redis://127.0.0.1:6379" */
  edgeRedisUrl: string;
  /**
   * Edge Redis exchange timeout (ms, per started 100 SKUs): a slower answer
   * counts as a Redis failure. It also measures the process's own queueing
   * (a timer and a reply wait for the same busy thread): at 100 ms, 1 read in
   * 300,000 of the soak at 60 % of capacity timed out on a loopback Redis.
   * @default 250
   */
  edgeRedisTimeoutMs: number;
  /** Base URL of the regional aggregator; empty = no regional fallback. */
  regionalUrl: string;
  regionalToken: string;
  /** @default 150 */
  regionalTimeoutMs: number;
  /** Consecutive regional failures that open the breaker. @default 5 */
  regionalBreakerThreshold: number;
  /** How long the breaker stays open before one probe is let through (ms). @default 5000 */
  regionalBreakerHalfOpenMs: number;
  /** TTL of records refilled into the edge Redis from the region. @default 60 */
  regionalRefillTtlSeconds: number;
  /** How long after validUntil a TTL-expired aggregate may be served while it is refreshed. @default 10 */
  staleWhileRevalidateSeconds: number;
  /** How long after validUntil a TTL-expired aggregate may be served when no fresh data can be had. @default 300 */
  staleIfErrorSeconds: number;
  /** Default TTL of a warmed aggregate. @default 30 */
  cacheTtlSeconds: number;
  /** How long a `not_found` answer is cached; a prewarm or purge of the SKU clears it; 0 = not cached. @default 5 */
  negativeTtlSeconds: number;
  /** @default "sku:" */
  redisKeyPrefix: string;
  /**
   * Where the node's aggregates live, shared by all its processes and
   * isolates: `redis` (the edge Redis: the self-hosted node's default, set by
   * `npm run node`) or `cache-api` (Cloudflare's Cache API). @default "cache-api"
   */
  aggregateStore: AggregateStoreKind;
  /** The Cache API cache of the aggregates (`cache-api`): empty = `caches.default`, else `caches.open(name)`. @default "" */
  cacheName: string;
  /**
   * With a Workers KV namespace bound (AGGREGATES_KV, the global tier): how
   * long a data centre keeps its Cache API copy of an aggregate, and an
   * isolate its copy in memory, before it reads KV again. A purge made in
   * another data centre is served as HIT here for at most KV's propagation
   * (60 s) + this. @default 5
   */
  localCopyTtlSeconds: number;
  /** Memory budget of the isolate's hot cache in front of the store; 0 = off. @default 50331648 (48 MiB) */
  hotCacheMaxBytes: number;
  /**
   * Requests an isolate lets work with the edge Redis at once (misses,
   * prewarms, purges: each holds one connection). Past it, a request that
   * needs Redis is answered 503 `overloaded` with Retry-After before any I/O,
   * instead of queueing until its budgets run out. Hits from memory and
   * requests waiting on another's computation are never refused. @default 32
   */
  edgeRedisMaxSessions: number;
  /** Bearer token of POST /v1/prewarm and /v1/purge; empty = those routes refuse everyone. */
  prewarmToken: string;
}

export const DEFAULTS = {
  edgeRedisUrl: "redis://127.0.0.1:6379",
  edgeRedisTimeoutMs: 250,
  regionalTimeoutMs: 150,
  regionalBreakerThreshold: 5,
  regionalBreakerHalfOpenMs: 5000,
  regionalRefillTtlSeconds: 60,
  staleWhileRevalidateSeconds: 10,
  staleIfErrorSeconds: 300,
  cacheTtlSeconds: 30,
  negativeTtlSeconds: 5,
  redisKeyPrefix: "sku:",
  hotCacheMaxBytes: 48 * 1024 * 1024,
  aggregateStore: "cache-api",
  edgeRedisMaxSessions: 32,
  cacheName: "",
  localCopyTtlSeconds: 5,
} as const;

export type AggregateStoreKind = "redis" | "cache-api";

/** The largest TTL a prewarm may ask for (the contract's). */
export { MAX_TTL_SECONDS };

/**
 * Every variable the worker reads (SPEC §6 and the tuning knobs below it):
 * the one list that wrangler vars, the self-hosted node's generated workerd
 * config (`edge-node/`) and the README follow.
 */
export const CONFIG_VARS = [
  "EDGE_REGION",
  "EDGE_REGIONS",
  "EDGE_REDIS_URL",
  "EDGE_REDIS_TIMEOUT_MS",
  "REGIONAL_URL",
  "REGIONAL_TOKEN",
  "REGIONAL_TIMEOUT_MS",
  "REGIONAL_BREAKER_THRESHOLD",
  "REGIONAL_BREAKER_HALF_OPEN_MS",
  "REGIONAL_REFILL_TTL_SECONDS",
  "STALE_WHILE_REVALIDATE_SECONDS",
  "STALE_IF_ERROR_SECONDS",
  "CACHE_TTL_SECONDS",
  "NEGATIVE_TTL_SECONDS",
  "REDIS_KEY_PREFIX",
  "AGGREGATE_STORE",
  "CACHE_NAME",
  "LOCAL_COPY_TTL_SECONDS",
  "HOT_CACHE_MAX_BYTES",
  "EDGE_REDIS_MAX_SESSIONS",
  "PREWARM_TOKEN",
] as const;

export type ConfigVar = (typeof CONFIG_VARS)[number];

/** The raw vars and secrets, as strings (wrangler vars are strings; workerd's `fromEnvironment` gives null when unset). */
export type RawConfig = Partial<Record<ConfigVar, unknown>>;

function str(v: unknown, fallback: string): string {
  return typeof v === "string" && v !== "" ? v : fallback;
}

function unset(v: unknown): boolean {
  return v === undefined || v === null || v === "";
}

function intIn(name: string, v: unknown, fallback: number, min: number, max: number): number {
  if (unset(v)) return fallback;
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function positiveInt(name: string, v: unknown, fallback: number, max: number): number {
  return intIn(name, v, fallback, 1, max);
}

function storeKind(v: unknown): AggregateStoreKind {
  if (unset(v)) return DEFAULTS.aggregateStore;
  if (v === "redis" || v === "cache-api") return v;
  throw new RangeError(`AGGREGATE_STORE must be redis or cache-api, got ${JSON.stringify(v)}`);
}

export function parseConfig(raw: RawConfig): Config {
  const edgeRegion = str(raw.EDGE_REGION, "");
  if (!isValidRegion(edgeRegion)) {
    throw new RangeError(`EDGE_REGION must be a region name, got ${JSON.stringify(raw.EDGE_REGION)}`);
  }
  const edgeRedisUrl = str(raw.EDGE_REDIS_URL, DEFAULTS.edgeRedisUrl);
  if (!/^rediss?:\/\//.test(edgeRedisUrl)) {
    throw new RangeError(`EDGE_REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(edgeRedisUrl)}`);
  }
  const regionalUrl = str(raw.REGIONAL_URL, "").replace(/\/+$/, "");
  if (regionalUrl !== "" && !/^https?:\/\//.test(regionalUrl)) {
    throw new RangeError(`REGIONAL_URL must be an http(s) URL, got ${JSON.stringify(regionalUrl)}`);
  }
  let edgeRegions: string[] | null = null;
  if (!unset(raw.EDGE_REGIONS)) {
    edgeRegions = String(raw.EDGE_REGIONS).split(",").map((r) => r.trim()).filter((r) => r !== "");
    const bad = edgeRegions.find((r) => !isValidRegion(r));
    if (bad !== undefined || edgeRegions.length === 0) throw new RangeError(`EDGE_REGIONS must be a comma-separated list of region names, got ${JSON.stringify(raw.EDGE_REGIONS)}`);
    if (!edgeRegions.includes(edgeRegion)) throw new RangeError(`EDGE_REGIONS must include EDGE_REGION (${edgeRegion}), got ${JSON.stringify(raw.EDGE_REGIONS)}`);
  }
  const c: Config = {
    edgeRegion,
    edgeRegions,
    edgeRedisUrl,
    edgeRedisTimeoutMs: positiveInt("EDGE_REDIS_TIMEOUT_MS", raw.EDGE_REDIS_TIMEOUT_MS, DEFAULTS.edgeRedisTimeoutMs, 60_000),
    regionalUrl,
    regionalToken: str(raw.REGIONAL_TOKEN, ""),
    regionalTimeoutMs: positiveInt("REGIONAL_TIMEOUT_MS", raw.REGIONAL_TIMEOUT_MS, DEFAULTS.regionalTimeoutMs, 60_000),
    regionalBreakerThreshold: positiveInt("REGIONAL_BREAKER_THRESHOLD", raw.REGIONAL_BREAKER_THRESHOLD, DEFAULTS.regionalBreakerThreshold, 1000),
    regionalBreakerHalfOpenMs: positiveInt("REGIONAL_BREAKER_HALF_OPEN_MS", raw.REGIONAL_BREAKER_HALF_OPEN_MS, DEFAULTS.regionalBreakerHalfOpenMs, 3_600_000),
    regionalRefillTtlSeconds: positiveInt("REGIONAL_REFILL_TTL_SECONDS", raw.REGIONAL_REFILL_TTL_SECONDS, DEFAULTS.regionalRefillTtlSeconds, MAX_TTL_SECONDS),
    staleWhileRevalidateSeconds: intIn("STALE_WHILE_REVALIDATE_SECONDS", raw.STALE_WHILE_REVALIDATE_SECONDS, DEFAULTS.staleWhileRevalidateSeconds, 0, MAX_TTL_SECONDS),
    staleIfErrorSeconds: intIn("STALE_IF_ERROR_SECONDS", raw.STALE_IF_ERROR_SECONDS, DEFAULTS.staleIfErrorSeconds, 0, MAX_TTL_SECONDS),
    cacheTtlSeconds: positiveInt("CACHE_TTL_SECONDS", raw.CACHE_TTL_SECONDS, DEFAULTS.cacheTtlSeconds, MAX_TTL_SECONDS),
    negativeTtlSeconds: intIn("NEGATIVE_TTL_SECONDS", raw.NEGATIVE_TTL_SECONDS, DEFAULTS.negativeTtlSeconds, 0, MAX_TTL_SECONDS),
    redisKeyPrefix: str(raw.REDIS_KEY_PREFIX, DEFAULTS.redisKeyPrefix),
    prewarmToken: str(raw.PREWARM_TOKEN, ""),
    aggregateStore: storeKind(raw.AGGREGATE_STORE),
    cacheName: str(raw.CACHE_NAME, DEFAULTS.cacheName),
    localCopyTtlSeconds: positiveInt("LOCAL_COPY_TTL_SECONDS", raw.LOCAL_COPY_TTL_SECONDS, DEFAULTS.localCopyTtlSeconds, 60),
    edgeRedisMaxSessions: positiveInt("EDGE_REDIS_MAX_SESSIONS", raw.EDGE_REDIS_MAX_SESSIONS, DEFAULTS.edgeRedisMaxSessions, 100_000),
    // An isolate has 128 MB in all.
    hotCacheMaxBytes: intIn("HOT_CACHE_MAX_BYTES", raw.HOT_CACHE_MAX_BYTES, DEFAULTS.hotCacheMaxBytes, 0, 96 * 1024 * 1024),
  };
  return c;
}

const parsed = new WeakMap<object, Config>();

/** The parsed config of an `env` object, parsed on first use and then reused. */
export function configOf(env: object): Config {
  let c = parsed.get(env);
  if (!c) {
    c = parseConfig(env as RawConfig);
    parsed.set(env, c);
  }
  return c;
}

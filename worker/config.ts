/**
 * The worker's configuration (SPEC §6), read once per isolate from the
 * wrangler vars and secrets and validated up front: a bad value fails every
 * request with a precise message instead of misbehaving on some of them.
 */

import { isValidRegion } from "./ids";

export interface Config {
  /** Region served by this node; the default `region` of every request. */
  edgeRegion: string;
  /** @default "redis://127.0.0.1:6379" */
  edgeRedisUrl: string;
  /** Edge Redis command timeout (ms): a slower answer counts as a Redis failure. @default 100 */
  edgeRedisTimeoutMs: number;
  /** Base URL of the regional aggregator; empty = no regional fallback. */
  regionalUrl: string;
  regionalToken: string;
  /** @default 150 */
  regionalTimeoutMs: number;
  /** Default TTL of a warmed aggregate. @default 30 */
  cacheTtlSeconds: number;
  /** @default "sku:" */
  redisKeyPrefix: string;
  /** Bearer token of POST /v1/prewarm and /v1/purge; empty = those routes refuse everyone. */
  prewarmToken: string;
}

export const DEFAULTS = {
  edgeRedisUrl: "redis://127.0.0.1:6379",
  edgeRedisTimeoutMs: 100,
  regionalTimeoutMs: 150,
  cacheTtlSeconds: 30,
  redisKeyPrefix: "sku:",
} as const;

/** The largest TTL a prewarm may ask for (1 day); validity is capped by the data anyway. */
export const MAX_TTL_SECONDS = 86_400;

/** The raw vars and secrets, as strings (wrangler vars are strings). */
export type RawConfig = Partial<Record<
  | "EDGE_REGION"
  | "EDGE_REDIS_URL"
  | "EDGE_REDIS_TIMEOUT_MS"
  | "REGIONAL_URL"
  | "REGIONAL_TOKEN"
  | "REGIONAL_TIMEOUT_MS"
  | "CACHE_TTL_SECONDS"
  | "REDIS_KEY_PREFIX"
  | "PREWARM_TOKEN",
  unknown
>>;

function str(v: unknown, fallback: string): string {
  return typeof v === "string" && v !== "" ? v : fallback;
}

function positiveInt(name: string, v: unknown, fallback: number, max: number): number {
  if (v === undefined || v === "") return fallback;
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > max) {
    throw new RangeError(`${name} must be an integer in 1..${max}, got ${JSON.stringify(v)}`);
  }
  return n;
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
  return {
    edgeRegion,
    edgeRedisUrl,
    edgeRedisTimeoutMs: positiveInt("EDGE_REDIS_TIMEOUT_MS", raw.EDGE_REDIS_TIMEOUT_MS, DEFAULTS.edgeRedisTimeoutMs, 60_000),
    regionalUrl,
    regionalToken: str(raw.REGIONAL_TOKEN, ""),
    regionalTimeoutMs: positiveInt("REGIONAL_TIMEOUT_MS", raw.REGIONAL_TIMEOUT_MS, DEFAULTS.regionalTimeoutMs, 60_000),
    cacheTtlSeconds: positiveInt("CACHE_TTL_SECONDS", raw.CACHE_TTL_SECONDS, DEFAULTS.cacheTtlSeconds, MAX_TTL_SECONDS),
    redisKeyPrefix: str(raw.REDIS_KEY_PREFIX, DEFAULTS.redisKeyPrefix),
    prewarmToken: str(raw.PREWARM_TOKEN, ""),
  };
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

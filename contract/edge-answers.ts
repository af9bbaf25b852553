/**
 * The edge node's answers other than a prewarm's and a purge's (SPEC §4, §5),
 * as zod schemas: the aggregate a read serves (written by the Go rules, so
 * described here, not parsed), a multi-get, the hot SKUs, /healthz. The
 * OpenAPI document is generated from them; the scheduler reads /healthz and
 * multi-gets (verify) by the same shapes.
 */
import * as z from "zod/mini";
import { SKU_FAILURE_CODES, RULES_VERSION_RE, WARM_SCOPES } from "./prewarm";

const int = z.int();
const count = z.int().check(z.gte(0));
const ms = z.int().check(z.gte(0));

/** SPEC §4: an aggregate, as served. */
export const aggregateSchema = z.object({
  sku: z.string(),
  region: z.string(),
  stock: z.object({ available: count, status: z.enum(["in_stock", "low_stock", "out_of_stock"]), maxOrderQty: count }),
  price: z.object({ amount: int, list: int, currency: z.string(), promoId: z.nullable(z.string()) }),
  /** The next price change, if one is known. */
  next: z.nullable(z.object({ at: ms, amount: int, promoId: z.nullable(z.string()) })),
  source: z.enum(["edge", "regional"]),
  computedAt: ms,
  validUntil: ms,
});

/** Why a look (`only-if-cached`) answered STALE: its TTL ran out, a soft purge, or other rules computed it. */
export const STALE_REASONS = ["expired", "purged", "rules"] as const;

/** GET /v1/skus?ids=…: the aggregates found, the others in `failed`; a look adds how long each is cached, why a STALE one is, and its scope. */
export const multiGetAnswerSchema = z.object({
  region: z.string(),
  aggregates: z.array(aggregateSchema),
  failed: z.array(z.object({ sku: z.string(), code: z.enum(SKU_FAILURE_CODES) })),
  /** A look: when each cached key stops being answered without computing it (ms). */
  cachedUntil: z.optional(z.record(z.string(), ms)),
  /** A look: why each STALE key is. */
  stale: z.optional(z.record(z.string(), z.enum(STALE_REASONS))),
  /** A look: where what the node warms can be read. */
  scope: z.optional(z.enum(WARM_SCOPES)),
  /** A look on a node with a global tier: when every data centre sees each copy (ms). */
  globalAt: z.optional(z.record(z.string(), ms)),
});

/** GET /v1/hot: the most-read SKUs of the window, most read first. */
export const hotAnswerSchema = z.object({ skus: z.array(z.object({ sku: z.string(), region: z.string(), reads: count })) });

/** GET /healthz. */
export const healthAnswerSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  version: z.string(),
  rules: z.string().check(z.regex(RULES_VERSION_RE)),
  region: z.string(),
  store: z.enum(["redis", "cache-api"]),
  scope: z.enum(WARM_SCOPES),
  /** With scope `global`: how long a write takes to be seen everywhere (ms). */
  propagationMs: z.optional(ms),
  edgeRedis: z.object({ ok: z.boolean(), error: z.optional(z.string()) }),
  regional: z.object({ configured: z.boolean(), breaker: z.enum(["closed", "half-open", "open"]) }),
  wasm: z.object({ ok: z.boolean(), abi: int, error: z.optional(z.string()) }),
});

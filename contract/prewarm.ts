/**
 * POST /v1/prewarm (SPEC §5), as the edge worker serves it and the scheduler
 * sends it: the request, the answer, its limits and its per-SKU failure codes.
 * The request and the answer are zod schemas (`zod/mini`, small in the
 * worker's bundle): the worker validates the request with the one, the
 * OpenAPI document is generated from both, and the types come from them.
 */
import * as z from "zod/mini";
import { regionSchema } from "./ids";
import { MAX_REQUEST_TAGS, tagSchema } from "./tags";

/** The most SKUs one prewarm batch may carry. */
export const MAX_BATCH = 1000;

/**
 * Per-SKU failure codes of an answer (SPEC §5); `not_cached` only answers a
 * look (`only-if-cached`); `purged`: a purge of the key came while the batch
 * computed it from records read before it, so it was not written (send it again).
 */
export const SKU_FAILURE_CODES = ["not_found", "invalid_record", "regional_unavailable", "invalid_sku", "not_cached", "purged"] as const;
export type SkuFailureCode = (typeof SKU_FAILURE_CODES)[number];

/** The largest TTL a prewarm may ask for (1 day); validity is capped by the data anyway. */
export const MAX_TTL_SECONDS = 86_400;

/** A rules version (SPEC §9): the first 12 hex digits of the SHA-256 of the go-stock.wasm bytes. */
export const RULES_VERSION_RE = /^[0-9a-f]{12}$/;

/**
 * Where what a node warms can be read: `node` (a self-hosted node: every
 * process, through its edge Redis), `data-centre` (Cloudflare with the Cache
 * API alone: the data centre the request landed in), `global` (Cloudflare
 * with Workers KV behind the Cache API: every data centre, once propagated).
 */
export const WARM_SCOPES = ["node", "data-centre", "global"] as const;
export type WarmScope = (typeof WARM_SCOPES)[number];

const got = (v: unknown): string => JSON.stringify(v) ?? String(v);
const int = (min: number, max: number, error: (input: unknown) => string) =>
  z.int({ error: (i) => error(i.input) }).check(z.gte(min, { error: (i) => error(i.input) }), z.lte(max, { error: (i) => error(i.input) }));

/** A request's `region`: a region name, or empty for the node's EDGE_REGION (whether the node answers for it is the node's check). */
export const regionParamSchema = z.union([z.literal(""), regionSchema], {
  error: (i) => `region must be one region name matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, got ${got(i.input)}`,
});

const JOB_ID = "jobId must be a non-empty string of at most 200 characters";

/**
 * The body of POST /v1/prewarm. SKU ids are strings here: one that is not a
 * SKU id fails alone (`invalid_sku` in `failed`), not the batch. Whether
 * `ttlJitter` is below `ttl` depends on the node's default TTL: the node checks it.
 */
export const prewarmRequestSchema = z.object({
  region: z.optional(regionParamSchema),
  skus: z
    .array(z.string({ error: (i) => `must be a string, got ${got(i.input)}` }), { error: "skus must be an array of SKU ids" })
    .check(z.minLength(1, { error: "skus must not be empty" }), z.maxLength(MAX_BATCH, { error: (i) => `at most ${MAX_BATCH} SKUs per batch, got ${(i.input as unknown[]).length}` })),
  /** Seconds; default the node's CACHE_TTL_SECONDS. */
  ttl: z.optional(int(1, MAX_TTL_SECONDS, (v) => `ttl must be an integer number of seconds in 1..${MAX_TTL_SECONDS}, got ${got(v)}`)),
  /** Up to this many seconds are taken off each SKU's TTL (by SKU); below `ttl`. */
  ttlJitter: z.optional(int(0, MAX_TTL_SECONDS - 1, (v) => `ttlJitter must be an integer number of seconds below ttl, got ${got(v)}`)),
  /** Tags added to every aggregate of the batch (SPEC §9), at most 16. */
  tags: z.optional(
    z
      .array(tagSchema, { error: "tags must be an array of tags (kind:value)" })
      .check(z.maxLength(MAX_REQUEST_TAGS, { error: (i) => `at most ${MAX_REQUEST_TAGS} tags per batch, got ${(i.input as unknown[]).length}` })),
  ),
  jobId: z.optional(z.string({ error: JOB_ID }).check(z.minLength(1, { error: JOB_ID }), z.maxLength(200, { error: JOB_ID }))),
}, { error: "body must be an object {region?, skus, ttl?, ttlJitter?, tags?, jobId?}" });

export type PrewarmRequest = z.input<typeof prewarmRequestSchema>;

const count = z.int().check(z.gte(0));

/** The answer of POST /v1/prewarm. */
export const prewarmAnswerSchema = z.object({
  jobId: z.string(),
  region: z.string(),
  warmed: count,
  fromEdge: count,
  fromRegional: count,
  failed: z.array(z.object({ sku: z.string(), code: z.enum(SKU_FAILURE_CODES) })),
  durationMs: count,
  /** The rules version that computed the batch (SPEC §9); absent from nodes older than it. */
  rules: z.optional(z.string().check(z.regex(RULES_VERSION_RE))),
  /** Where the warmed aggregates can be read (`WarmScope`); absent from nodes older than it. */
  scope: z.optional(z.enum(WARM_SCOPES)),
  /** With scope `global`: when every data centre sees them (ms, the write + GLOBAL_PROPAGATION_MS). */
  globalAt: z.optional(count),
});

export type PrewarmAnswer = z.output<typeof prewarmAnswerSchema>;

/**
 * How long a Workers KV write or delete may take to be seen in every data
 * centre (Cloudflare documents up to 60 s: a location keeps what it read,
 * absent keys included, that long). A key warmed on a `global` node is ready
 * everywhere this long after its write.
 */
export const GLOBAL_PROPAGATION_MS = 60_000;

/** Whether a decoded body is a prewarm answer (the scheduler checks what a node said). */
export function isPrewarmAnswer(v: unknown): v is PrewarmAnswer {
  if (typeof v !== "object" || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a["warmed"] === "number" && typeof a["fromEdge"] === "number" && typeof a["fromRegional"] === "number" && Array.isArray(a["failed"]);
}

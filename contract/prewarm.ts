/**
 * POST /v1/prewarm (SPEC §5), as the edge worker serves it and the scheduler
 * sends it: the request, the answer, its limits and its per-SKU failure codes.
 */

/** The most SKUs one prewarm batch may carry. */
export const MAX_BATCH = 1000;

/**
 * Per-SKU failure codes of an answer (SPEC §5); `not_cached` only answers a
 * look (`only-if-cached`); `purged`: a purge of the key came while the batch
 * computed it from records read before it, so it was not written (send it again).
 */
export const SKU_FAILURE_CODES = ["not_found", "invalid_record", "regional_unavailable", "invalid_sku", "not_cached", "purged"] as const;
export type SkuFailureCode = (typeof SKU_FAILURE_CODES)[number];

export interface PrewarmRequest {
  region?: string;
  skus: string[];
  /** Seconds; default the node's CACHE_TTL_SECONDS. */
  ttl?: number;
  /** Up to this many seconds are taken off each SKU's TTL (by SKU); below `ttl`. */
  ttlJitter?: number;
  /** Tags added to every aggregate of the batch (SPEC §9), at most 16. */
  tags?: string[];
  jobId?: string;
}

export interface PrewarmAnswer {
  jobId: string;
  region: string;
  warmed: number;
  fromEdge: number;
  fromRegional: number;
  failed: { sku: string; code: SkuFailureCode }[];
  durationMs: number;
  /** The rules version that computed the batch (SPEC §9); absent from nodes older than it. */
  rules?: string;
  /** Where the warmed aggregates can be read (`WarmScope`); absent from nodes older than it. */
  scope?: WarmScope;
  /** With scope `global`: when every data centre sees them (ms, the write + GLOBAL_PROPAGATION_MS). */
  globalAt?: number;
}

/**
 * Where what a node warms can be read: `node` (a self-hosted node: every
 * process, through its edge Redis), `data-centre` (Cloudflare with the Cache
 * API alone: the data centre the request landed in), `global` (Cloudflare
 * with Workers KV behind the Cache API: every data centre, once propagated).
 */
export type WarmScope = "node" | "data-centre" | "global";

/**
 * How long a Workers KV write or delete may take to be seen in every data
 * centre (Cloudflare documents up to 60 s: a location keeps what it read,
 * absent keys included, that long). A key warmed on a `global` node is ready
 * everywhere this long after its write.
 */
export const GLOBAL_PROPAGATION_MS = 60_000;

/** A rules version (SPEC §9): the first 12 hex digits of the SHA-256 of the go-stock.wasm bytes. */
export const RULES_VERSION_RE = /^[0-9a-f]{12}$/;

/** Whether a decoded body is a prewarm answer (the scheduler checks what a node said). */
export function isPrewarmAnswer(v: unknown): v is PrewarmAnswer {
  if (typeof v !== "object" || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a["warmed"] === "number" && typeof a["fromEdge"] === "number" && typeof a["fromRegional"] === "number" && Array.isArray(a["failed"]);
}

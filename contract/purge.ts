/**
 * POST /v1/purge (SPEC §9), as the edge worker serves it and the scheduler
 * sends it: the request, the answer and its limits (the tag grammar is
 * `tags.ts`'s).
 */

/** The most SKUs, and the most tags, one purge may name (each). */
export const MAX_PURGE_ENTRIES = 1000;

export interface PurgeRequest {
  region?: string;
  skus?: string[];
  tags?: string[];
  /** Mark the matched aggregates stale instead of dropping them. */
  soft?: boolean;
}

/** SPEC §9's answer; a node from before §9 answers `{region, purged, notCached}` (no `soft`). */
export interface PurgeAnswer {
  purged: number;
  soft?: boolean;
  region?: string;
}

/** Whether a decoded body is a purge answer (the scheduler checks what a node said). */
export function isPurgeAnswer(v: unknown): v is PurgeAnswer {
  if (typeof v !== "object" || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a["purged"] === "number" && Number.isInteger(a["purged"]) && a["purged"] >= 0 && (a["soft"] === undefined || typeof a["soft"] === "boolean");
}

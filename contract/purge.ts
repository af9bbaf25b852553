/**
 * POST /v1/purge (SPEC §9), as the edge worker serves it and the scheduler
 * sends it: the request, the answer and its limits (the tag grammar is
 * `tags.ts`'s), as zod schemas the worker validates with and the OpenAPI
 * document is generated from.
 */
import * as z from "zod/mini";
import { skuIdSchema } from "./ids";
import { regionParamSchema } from "./prewarm";
import { tagSchema } from "./tags";

/** The most SKUs, and the most tags, one purge may name (each). */
export const MAX_PURGE_ENTRIES = 1000;

const list = <T extends z.ZodMiniType>(field: "skus" | "tags", item: T) =>
  z.optional(
    z
      .array(item, { error: `${field} must be an array` })
      .check(z.maxLength(MAX_PURGE_ENTRIES, { error: (i) => `at most ${MAX_PURGE_ENTRIES} ${field} per purge, got ${(i.input as unknown[]).length}` })),
  );

/** The body of POST /v1/purge: skus, tags or both (non-empty), in one region or (none named) every region the node holds. */
export const purgeRequestSchema = z
  .object({
    region: z.optional(regionParamSchema),
    skus: list("skus", skuIdSchema),
    tags: list("tags", tagSchema),
    /** Mark the matched aggregates stale instead of dropping them. */
    soft: z.optional(z.boolean({ error: (i) => `soft must be true or false, got ${JSON.stringify(i.input)}` })),
  }, { error: "body must be an object {region?, skus?, tags?, soft?}" })
  .check(z.refine((b) => (b.skus?.length ?? 0) + (b.tags?.length ?? 0) > 0, { error: "name what to purge: skus, tags or both (non-empty)" }));

export type PurgeRequest = z.input<typeof purgeRequestSchema>;

/** SPEC §9's answer; a node from before §9 answers `{region, purged, notCached}` (no `soft`). */
export const purgeAnswerSchema = z.object({
  purged: z.int().check(z.gte(0)),
  soft: z.optional(z.boolean()),
  /** The region purged; absent when every region the node holds was. */
  region: z.optional(z.string()),
});

export type PurgeAnswer = z.output<typeof purgeAnswerSchema>;

/** Whether a decoded body is a purge answer (the scheduler checks what a node said). */
export function isPurgeAnswer(v: unknown): v is PurgeAnswer {
  if (typeof v !== "object" || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a["purged"] === "number" && Number.isInteger(a["purged"]) && a["purged"] >= 0 && (a["soft"] === undefined || typeof a["soft"] === "boolean");
}

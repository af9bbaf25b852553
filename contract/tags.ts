/**
 * Tags (surrogate keys, SPEC §9): `kind:value`, kind one of the known kinds,
 * value 1 to 128 printable ASCII characters without spaces. The node and the
 * scheduler check them alike.
 */
import * as z from "zod/mini";

export const TAG_KINDS = ["sku", "promo", "wh", "plan", "campaign", "label"] as const;
export type TagKind = (typeof TAG_KINDS)[number];

/** The most tags a prewarm request may name. */
export const MAX_REQUEST_TAGS = 16;

const TAG = new RegExp(`^(?:${TAG_KINDS.join("|")}):[!-~]{1,128}$`);

export function isValidTag(t: unknown): t is string {
  return typeof t === "string" && TAG.test(t);
}

/** A tag, for the OpenAPI documents and request validation: its pattern is the one `isValidTag` tests. */
export const tagSchema = z.string().check(z.regex(TAG, { error: (i) => tagProblem(i.input) }));

/** Why `t` is not a tag, for an error message. */
export function tagProblem(t: unknown): string {
  if (typeof t !== "string") return `must be a string, got ${JSON.stringify(t)}`;
  const colon = t.indexOf(":");
  const kind = colon < 0 ? t : t.slice(0, colon);
  if (colon < 0 || !(TAG_KINDS as readonly string[]).includes(kind)) return `${JSON.stringify(t.slice(0, 140))} is not kind:value with kind one of ${TAG_KINDS.join(", ")}`;
  return `the value of ${JSON.stringify(t.slice(0, 140))} must be 1 to 128 printable ASCII characters without spaces`;
}

/** The sorted union of tag lists (each sorted or not), without repeats. */
export function mergeTags(...lists: readonly (readonly string[])[]): string[] {
  return [...new Set(lists.flat())].sort();
}

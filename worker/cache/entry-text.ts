/**
 * An entry as text, as the stores keep it: the edge Redis (one string), the
 * Cache API (segment metadata in a header, the bodies as the body) and
 * Workers KV (one string). Pure functions, no I/O.
 */
import { entryTags, type CachedAggregate, type Segment } from "./entry";

export type SegmentMeta = [computedAt: number, validUntil: number, nextAt: number | null, length: number, tags: string];

/** A segment's metadata; a cached not_found has length -1 (and no body). */
export function metaOf(entry: CachedAggregate): SegmentMeta[] {
  return entry.segments.map((s) => [s.computedAt, s.validUntil, s.nextAt, s.notFound ? -1 : s.json.length, s.tags]);
}

export function parseMeta(text: string | null): SegmentMeta[] | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) && v.length > 0 && v.every((m) => Array.isArray(m) && m.length === 5 && typeof m[4] === "string") ? (v as SegmentMeta[]) : null;
  } catch {
    return null;
  }
}

/** Rebuilds the segments from their metadata and the concatenated bodies; null when they do not match. */
export function entryOf(meta: SegmentMeta[] | null, body: string, rules: string): Segment[] | null {
  if (!meta) return null;
  const segments: Segment[] = [];
  let o = 0;
  for (const [computedAt, validUntil, nextAt, length, tags] of meta) {
    if (length === -1) {
      segments.push({ json: "", computedAt, validUntil, nextAt: null, tags, rules, notFound: true });
      continue;
    }
    segments.push({ json: body.slice(o, o + length), computedAt, validUntil, nextAt, tags, rules });
    o += length;
  }
  return o === body.length ? segments : null;
}

/**
 * An entry as one string: a head line (its basis, its tags and its rules
 * version, tab-separated: what the edge Redis's scripts read of it), its
 * segment metadata (JSON, one line), and the bodies.
 */
export function encodeEntry(entry: CachedAggregate): string {
  return `${entry.basis}\t${entryTags(entry)}\t${entry.segments[0]?.rules ?? ""}\n${JSON.stringify(metaOf(entry))}\n${entry.segments.map((s) => s.json).join("")}`;
}

export function decodeEntry(text: string): CachedAggregate | null {
  const a = text.indexOf("\n");
  const b = a < 0 ? -1 : text.indexOf("\n", a + 1);
  const head = text.slice(0, Math.max(0, a)).split("\t");
  const basis = Number(head[0]);
  if (b < 0 || head.length !== 3 || head[0] === "" || !Number.isSafeInteger(basis)) return null;
  const segments = entryOf(parseMeta(text.slice(a + 1, b)), text.slice(b + 1), head[2]!);
  return segments && { segments, basis };
}

/** How long the store keeps an entry's bytes (ms): to its last validUntil, plus the stale grace (none for a cached not_found). */
export function keepMs(entry: CachedAggregate, now: number, graceSeconds: number): number {
  const last = entry.segments[entry.segments.length - 1]!;
  return Math.max(1, last.validUntil - now + (last.notFound ? 0 : graceSeconds * 1000));
}

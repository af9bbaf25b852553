import type { Segment } from "./entry";
/**
 * Strong ETags of aggregate bodies: the 64-bit FNV-1a hash of the JSON.
 * A segment's ETag is hashed when it is first served, not when it is
 * warmed: a 1,000-SKU prewarm hashed ~330 KB of JSON that may never be read
 * (SHA-256 through crypto.subtle cost more per batch than the Redis read).
 * It guards against stale copies, not against an adversary, and a body
 * changes whenever its data or validity does.
 */

/** The length of an ETag: 16 hex digits in quotes. */
export const ETAG_LENGTH = 18;

/** `"<16 hex digits>"`: FNV-1a 64 over the string's UTF-16 code units (its bytes, for ASCII). */
export function etagOf(json: string): string {
  // 64 bits as four 16-bit limbs, low to high, so every product stays exact in a double.
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (let i = 0; i < json.length; i++) {
    h0 ^= json.charCodeAt(i);
    // h * 0x100000001b3 = h * 0x1b3 + (h << 40); bits past 64 fall away.
    const t0 = h0 * 0x1b3;
    let t1 = h1 * 0x1b3;
    let t2 = h2 * 0x1b3 + (h0 << 8);
    const t3 = h3 * 0x1b3 + (h1 << 8);
    t1 += t0 >>> 16;
    h0 = t0 & 0xffff;
    t2 += t1 >>> 16;
    h1 = t1 & 0xffff;
    h3 = (t3 + (t2 >>> 16)) & 0xffff;
    h2 = t2 & 0xffff;
  }
  const hex = (n: number): string => n.toString(16).padStart(4, "0");
  return `"${hex(h3)}${hex(h2)}${hex(h1)}${hex(h0)}"`;
}

/** The segment's ETag, hashed on its first use and kept on it. */
export function segmentEtag(segment: Segment): string {
  return (segment.etag ??= etagOf(segment.json));
}

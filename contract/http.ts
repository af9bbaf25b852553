/**
 * The HTTP rules both services keep, the edge worker (SPEC §5) and the
 * reference regional aggregator (§5.1), in either runtime (workerd with
 * nodejs_compat, Node): bearer tokens compared in constant time, and request
 * bodies read up to a cap, never buffered whole first.
 */
import { timingSafeEqual } from "node:crypto";

/** What an `Authorization` header says about `token`: an attacker learns nothing from how long a wrong one takes. */
export function bearerVerdict(header: string | null | undefined, token: string): "ok" | "missing" | "invalid" {
  if (!header) return "missing";
  const m = /^Bearer\s+(.+)$/i.exec(header);
  const got = new TextEncoder().encode(m ? m[1]!.trim() : "");
  const want = new TextEncoder().encode(token);
  // timingSafeEqual needs equal lengths; comparing `want` with itself keeps the time independent of the guess.
  const same = got.byteLength === want.byteLength ? timingSafeEqual(got, want) : !timingSafeEqual(want, want);
  return m && same ? "ok" : "invalid";
}

/** The bytes of a body, or null once it passes `max` bytes (the rest is not read). */
export async function readCapped(chunks: AsyncIterable<Uint8Array>, max: number): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const c of chunks) {
    size += c.byteLength;
    if (size > max) return null;
    parts.push(c);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

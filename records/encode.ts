/**
 * The MessagePack encoding of SPEC §2 records: plain maps with string keys
 * (no msgpackr record extension) and integers as MessagePack integers.
 *
 * msgpackr writes a JS number outside the 32-bit range as a float64, which
 * the rules rightly reject for integer fields; such numbers are therefore
 * passed to it as BigInt, which it writes as int64.
 */
import { Packr } from "msgpackr";

const packr = new Packr({ useRecords: false });

function integersAsMsgpackInts(v: unknown): unknown {
  if (typeof v === "number") {
    return Number.isInteger(v) && (v > 0xffffffff || v < -0x80000000) ? BigInt(v) : v;
  }
  if (Array.isArray(v)) return v.map(integersAsMsgpackInts);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = integersAsMsgpackInts(x);
    return out;
  }
  return v;
}

/** Encodes a record (or any value) as SPEC §2 MessagePack. */
export function encodeRecord(value: unknown): Uint8Array {
  return packr.pack(integersAsMsgpackInts(value));
}

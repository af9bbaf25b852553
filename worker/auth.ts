/** Bearer-token checks for the write routes (prewarm, purge). */
import { HttpError } from "./errors";

const encoder = new TextEncoder();

function equalConstantTime(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  // timingSafeEqual needs equal lengths; comparing y with itself keeps the time independent of a's length.
  if (x.byteLength !== y.byteLength) return !crypto.subtle.timingSafeEqual(y, y);
  return crypto.subtle.timingSafeEqual(x, y);
}

/** Throws 401 unless the request carries `Authorization: Bearer <token>`. */
export function requireBearer(request: Request, token: string): void {
  if (token === "") throw new HttpError("unauthorized", "this node has no PREWARM_TOKEN configured; write routes are disabled");
  const header = request.headers.get("Authorization");
  if (!header) throw new HttpError("unauthorized", "missing Authorization: Bearer token", { "WWW-Authenticate": "Bearer" });
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m || !equalConstantTime(m[1]!.trim(), token)) {
    throw new HttpError("unauthorized", "invalid bearer token", { "WWW-Authenticate": 'Bearer error="invalid_token"' });
  }
}

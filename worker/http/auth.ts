/** Bearer-token checks for the write routes (prewarm, purge, hot). */
import { bearerVerdict } from "../../contract/http";
import { HttpError } from "./errors";

/** Throws 401 unless the request carries `Authorization: Bearer <token>`. */
export function requireBearer(request: Request, token: string): void {
  if (token === "") throw new HttpError("unauthorized", "this node has no PREWARM_TOKEN configured; write routes are disabled");
  const verdict = bearerVerdict(request.headers.get("Authorization"), token);
  if (verdict === "missing") throw new HttpError("unauthorized", "missing Authorization: Bearer token", { "WWW-Authenticate": "Bearer" });
  if (verdict === "invalid") throw new HttpError("unauthorized", "invalid bearer token", { "WWW-Authenticate": 'Bearer error="invalid_token"' });
}

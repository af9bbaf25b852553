/**
 * HTTP-level errors. Each failure that a caller treats differently has its own
 * stable code (SPEC §5); errors become responses in exactly one place, the
 * router's `catch` (see router.ts).
 */

/** Codes of whole-request failures, each with its HTTP status. */
export const HTTP_ERRORS = {
  bad_request: 400,
  invalid_sku: 400,
  unauthorized: 401,
  not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid_record: 502,
  regional_unavailable: 503,
  store_unavailable: 503,
  overloaded: 503,
  not_cached: 504,
  internal: 500,
  not_implemented: 501,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export type { SkuFailureCode } from "../../contract/prewarm";

export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = HTTP_ERRORS[code];
  }
}

export function isHttpError(e: unknown): e is HttpError {
  return e instanceof HttpError;
}

/** The JSON error body of SPEC §5: `{"error": {"code", "message"}}`. */
export function errorResponse(e: HttpError): Response {
  return Response.json(
    { error: { code: e.code, message: e.message } },
    { status: e.status, headers: { "Cache-Control": "no-store", ...e.headers } },
  );
}

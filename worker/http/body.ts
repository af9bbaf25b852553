/**
 * Request bodies: JSON or MessagePack, read with a hard size cap so that an
 * oversize body is refused with 413 before it is buffered whole.
 */
import { unpack } from "msgpackr";
import type * as z from "zod/mini";
import { readCapped as readCappedChunks } from "../../contract/http";
import { HttpError, type HttpErrorCode } from "./errors";

/** The largest body accepted: 1,000 SKUs of 64 characters fit with room to spare. */
export const MAX_BODY_BYTES = 256 * 1024;

async function readCapped(request: Request, max: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > max) throw new HttpError("payload_too_large", `body is ${declared} bytes; the limit is ${max}`);
  if (!request.body) return new Uint8Array(0);
  const bytes = await readCappedChunks(request.body, max);
  if (bytes === null) throw new HttpError("payload_too_large", `body exceeds the limit of ${max} bytes`);
  return bytes;
}

/** Decodes a JSON or MessagePack body into an unknown value for the caller to validate. */
export async function readBody(request: Request, max = MAX_BODY_BYTES): Promise<unknown> {
  const type = (request.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
  const isMsgpack = type === "application/msgpack" || type === "application/x-msgpack" || type === "application/vnd.msgpack";
  if (!isMsgpack && type !== "application/json") {
    throw new HttpError("unsupported_media_type", `Content-Type must be application/json or application/msgpack, got ${JSON.stringify(type)}`);
  }
  const bytes = await readCapped(request, max);
  if (bytes.byteLength === 0) throw new HttpError("bad_request", "body is empty");
  try {
    return isMsgpack ? unpack(bytes) : JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (e) {
    throw new HttpError("bad_request", `body is not valid ${isMsgpack ? "MessagePack" : "JSON"}: ${(e as Error).message}`);
  }
}

/**
 * A decoded body checked by its contract schema (`contract/`, the one the
 * OpenAPI document shows): its value, or an HttpError for its first problem,
 * with the code `codeOf` gives that problem (`bad_request` by default). The
 * message names the field (`tags[3]: …` for an item of a list).
 */
export function validated<S extends z.ZodMiniType>(schema: S, body: unknown, codeOf: (issue: z.core.$ZodIssue) => HttpErrorCode | undefined = () => undefined): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const [field, index] = issue.path;
  const message = typeof index === "number" ? `${String(field)}[${index}]: ${issue.message}` : issue.message;
  throw new HttpError(codeOf(issue) ?? "bad_request", message);
}

/**
 * Request bodies: JSON or MessagePack, read with a hard size cap so that an
 * oversize body is refused with 413 before it is buffered whole.
 */
import { unpack } from "msgpackr";
import { readCapped as readCappedChunks } from "../../contract/http";
import { HttpError } from "./errors";

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

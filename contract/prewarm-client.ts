/**
 * One POST /v1/prewarm to one edge node (SPEC §5; the scheduler's batches and
 * the node's change watch send it here), with a timeout, and the
 * classification of what went wrong: a retryable failure (the node is down,
 * slow, overloaded or answered 5xx) or a final one (the node refuses the
 * batch: 4xx). Per-SKU failures inside a 200 answer are data, not errors.
 */

import { isPrewarmAnswer, type PrewarmAnswer, type PrewarmRequest } from "./prewarm";

export type { PrewarmAnswer };

/** A batch that did not get a 200: `code` is what the report counts its SKUs under. */
export class BatchError extends Error {
  override readonly name = "BatchError";
  constructor(
    /** `node_unreachable`, `timeout`, `http_<status>` or `bad_answer`. */
    readonly code: string,
    message: string,
    /** Whether trying again may succeed. */
    readonly retryable: boolean,
    /** How long the node asked to be left alone (its `Retry-After`, in ms), when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function isBatchError(e: unknown): e is BatchError {
  return e instanceof BatchError;
}

export interface BatchRequest {
  url: string;
  token: string;
  region: string;
  skus: readonly string[];
  ttl?: number | undefined;
  ttlJitter?: number | undefined;
  /** Tags added to every aggregate of the batch (SPEC §9); none sent when empty. */
  tags?: readonly string[] | undefined;
  jobId: string;
  timeoutMs: number;
}

/** A `Retry-After` of delay-seconds in ms (an HTTP date, which no node sends, is ignored). */
function retryAfterMs(header: string | null): number | undefined {
  return header !== null && /^\d{1,6}$/.test(header.trim()) ? Number(header.trim()) * 1000 : undefined;
}

export async function postBatch(req: BatchRequest): Promise<PrewarmAnswer> {
  let res: Response;
  try {
    res = await fetch(`${req.url}/v1/prewarm`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${req.token}` },
      body: JSON.stringify({ region: req.region, skus: [...req.skus], jobId: req.jobId, ...(req.ttl === undefined ? {} : { ttl: req.ttl }), ...(req.ttlJitter ? { ttlJitter: req.ttlJitter } : {}), ...(req.tags?.length ? { tags: [...req.tags] } : {}) } satisfies PrewarmRequest),
      signal: AbortSignal.timeout(req.timeoutMs),
    });
  } catch (e) {
    const err = e as Error;
    if (err.name === "TimeoutError") throw new BatchError("timeout", `${req.url} did not answer within ${req.timeoutMs} ms`, true);
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? err.message;
    throw new BatchError("node_unreachable", `${req.url}: ${cause}`, true);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (e) {
    if ((e as Error).name === "TimeoutError") throw new BatchError("timeout", `${req.url} did not finish its answer within ${req.timeoutMs} ms`, true);
    body = undefined;
  }
  if (res.status !== 200) {
    const detail = typeof body === "object" && body !== null ? JSON.stringify(body).slice(0, 300) : "";
    const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new BatchError(`http_${res.status}`, `${req.url} answered ${res.status} ${detail}`, retryable, retryAfterMs(res.headers.get("Retry-After")));
  }
  if (!isPrewarmAnswer(body)) throw new BatchError("bad_answer", `${req.url} answered 200 without a prewarm result`, true);
  return body;
}

/**
 * One POST /v1/prewarm to one edge node (SPEC §5; the scheduler's batches and
 * the node's change watch send it here), with a timeout, and the
 * classification of what went wrong: a retryable failure (the node is down,
 * slow, overloaded or answered 5xx) or a final one (the node refuses the
 * batch: 4xx). Per-SKU failures inside a 200 answer are data, not errors.
 */

import { describeRefusal, NodeCallError, postToNode, type NodeAnswer } from "./node-call";
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
  const body: PrewarmRequest = { region: req.region, skus: [...req.skus], jobId: req.jobId, ...(req.ttl === undefined ? {} : { ttl: req.ttl }), ...(req.ttlJitter ? { ttlJitter: req.ttlJitter } : {}), ...(req.tags?.length ? { tags: [...req.tags] } : {}) };
  let a: NodeAnswer;
  try {
    a = await postToNode(req.url, "/v1/prewarm", req.token, body, req.timeoutMs);
  } catch (e) {
    if (e instanceof NodeCallError) throw new BatchError(e.code, e.message, true);
    throw e;
  }
  if (a.status !== 200) {
    const retryable = a.status >= 500 || a.status === 429 || a.status === 408;
    throw new BatchError(`http_${a.status}`, describeRefusal(req.url, a), retryable, retryAfterMs(a.headers.get("Retry-After")));
  }
  if (!isPrewarmAnswer(a.body)) throw new BatchError("bad_answer", `${req.url} answered 200 without a prewarm result`, true);
  return a.body;
}

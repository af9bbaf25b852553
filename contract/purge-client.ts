/**
 * One POST /v1/purge to one edge node (SPEC §9; the scheduler's fleet purge
 * sends it here), with a timeout, and what went wrong as one code: the node
 * could not be reached (`node_unreachable`, `timeout`), refused the token
 * (`unauthorized`) or the request (`bad_request`), could not purge its store
 * (`store_unavailable`), answered another status (`http_<status>`), or
 * answered something that is not a purge result (`bad_answer`), or a result
 * that does not cover what was asked (`unsupported`: a node from before SPEC
 * §9, which ignores `tags` and `soft`, answers without `soft`).
 */
import { describeRefusal, NodeCallError, postToNode, type NodeAnswer } from "./node-call";
import { isPurgeAnswer, type PurgeAnswer, type PurgeRequest } from "./purge";

export type { PurgeAnswer, PurgeRequest };

export class PurgeError extends Error {
  override readonly name = "PurgeError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PurgeCall {
  url: string;
  token: string;
  body: PurgeRequest;
  timeoutMs: number;
}

/** The code of a non-200 answer: what a caller does differently about it. */
function codeOf(status: number, body: unknown): string {
  if (status === 401 || status === 403) return "unauthorized";
  if (status === 400 || status === 413 || status === 415) return "bad_request";
  const said = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (status === 503 && said === "store_unavailable") return "store_unavailable";
  return `http_${status}`;
}

export async function postPurge(req: PurgeCall): Promise<PurgeAnswer> {
  let a: NodeAnswer;
  try {
    a = await postToNode(req.url, "/v1/purge", req.token, req.body satisfies PurgeRequest, req.timeoutMs);
  } catch (e) {
    if (e instanceof NodeCallError) throw new PurgeError(e.code, e.message);
    throw e;
  }
  if (a.status !== 200) throw new PurgeError(codeOf(a.status, a.body), describeRefusal(req.url, a));
  const body = a.body;
  if (!isPurgeAnswer(body)) throw new PurgeError("bad_answer", `${req.url} answered 200 without a purge result`);
  // A node that does not know tags or soft purges ignores them: its answer has no `soft`. Not a confirmation.
  if ((req.body.tags !== undefined || req.body.soft === true) && body.soft !== (req.body.soft === true)) {
    throw new PurgeError("unsupported", `${req.url} answered without soft: ${String(req.body.soft === true)}: it does not purge by tag or soft (SPEC §9)`);
  }
  return body;
}

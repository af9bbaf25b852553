/**
 * One POST of JSON to one edge node with the bearer token and a timeout, the
 * transport both node clients share (`prewarm-client.ts`, `purge-client.ts`):
 * its status, headers and decoded body, or why there is none as one code,
 * `node_unreachable` or `timeout`. What an answer means is the caller's.
 */

/** The node could not be reached, or did not answer (whole) in time. */
export class NodeCallError extends Error {
  override readonly name = "NodeCallError";
  constructor(
    readonly code: "node_unreachable" | "timeout",
    message: string,
  ) {
    super(message);
  }
}

export interface NodeAnswer {
  status: number;
  headers: Headers;
  /** The decoded JSON body; undefined when it was not JSON. */
  body: unknown;
}

export async function postToNode(url: string, route: string, token: string, body: unknown, timeoutMs: number): Promise<NodeAnswer> {
  let res: Response;
  try {
    res = await fetch(`${url}${route}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = e as Error;
    if (err.name === "TimeoutError") throw new NodeCallError("timeout", `${url} did not answer within ${timeoutMs} ms`);
    throw new NodeCallError("node_unreachable", `${url}: ${(err as { cause?: { code?: string } }).cause?.code ?? err.message}`);
  }
  let decoded: unknown;
  try {
    decoded = await res.json();
  } catch (e) {
    if ((e as Error).name === "TimeoutError") throw new NodeCallError("timeout", `${url} did not finish its answer within ${timeoutMs} ms`);
    decoded = undefined;
  }
  return { status: res.status, headers: res.headers, body: decoded };
}

/** A non-200 answer in one line for a report: the node's URL, the status and the start of its JSON body. */
export function describeRefusal(url: string, a: NodeAnswer): string {
  const detail = typeof a.body === "object" && a.body !== null ? JSON.stringify(a.body).slice(0, 300) : "";
  return `${url} answered ${a.status} ${detail}`.trim();
}

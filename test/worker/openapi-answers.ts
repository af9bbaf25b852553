/**
 * Every answer the worker tests receive from the worker is checked against
 * docs/openapi/edge-node.json (status, headers, body; issue 23 item 4), inside
 * workerd: a setup file of the worker project. `SELF` of cloudflare:test reads
 * the test worker's `exports.default` each time it is used, so wrapping that
 * stub's `fetch` here checks every answer of `SELF.fetch`; the tests that call
 * the worker's or the router's `fetch` themselves (with an env of their own)
 * pass their answers through `checked`. Whatever does not match the document
 * fails the test that received it, in `afterEach`, with what was wrong.
 */
import { exports } from "cloudflare:workers";
import { afterEach } from "vitest";
import edgeDoc from "../../docs/openapi/edge-node.json";
import { ApiDocument, EDGE_CHECK } from "../openapi-check";

export const edgeApi = new ApiDocument(edgeDoc as Record<string, unknown>, EDGE_CHECK);

const problems: string[] = [];
const pending = new Set<Promise<void>>();
/** Answers checked so far in this file. */
export const tally = { answers: 0 };

/** Checks `res` (a copy of its body) against the document, after the test; returns `res`. */
export function checked(method: string, url: string, res: Response): Response {
  const p = res
    .clone()
    .text()
    .then(
      (body) => {
        tally.answers++;
        problems.push(...edgeApi.check({ method, url, status: res.status, headers: res.headers, body }));
      },
      () => undefined, // the body was cut short (an aborted request): nothing to check
    )
    .finally(() => pending.delete(p));
  pending.add(p);
  return res;
}

type Fetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
const stub = (exports as unknown as { default: { fetch: Fetch } }).default;
// The stub outlives a test file when files share an isolate: each file wraps the original, not the last file's wrapper.
const ORIGINAL = Symbol.for("edge-prewarm.test.self-fetch");
const store = globalThis as unknown as Record<symbol, Fetch | undefined>;
const original = (store[ORIGINAL] ??= stub.fetch.bind(stub));
stub.fetch = async (input, init) => {
  const res = await original(input, init);
  const url = input instanceof Request ? input.url : String(input);
  return checked(init?.method ?? (input instanceof Request ? input.method : "GET"), url, res);
};

afterEach(async () => {
  await Promise.all([...pending]);
  const found = problems.splice(0);
  if (found.length > 0) throw new Error(`answers outside their OpenAPI document:\n${[...new Set(found)].join("\n")}`);
});

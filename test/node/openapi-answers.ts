/**
 * Every answer the node tests receive from an edge node or the ops API is
 * checked against its OpenAPI document (issue 23 item 4): a setup file of the
 * node projects. `fetch` is wrapped: an answer from a running node of the
 * project's bundle (`runningNodes`: its socket or a process's probe port) is
 * checked (status, headers, body); so is every answer of an ops API app made
 * by `opsApp` or served by `serveOps` below (the tests import these instead
 * of ops-api.ts's), whoever asked it: a test over HTTP or in process, or the
 * console's actions. Whatever does not match its document fails the test that
 * received it, in `afterEach`, with what was wrong.
 */
import { afterEach } from "vitest";
import type { Hono } from "hono";
import type { ServerType } from "@hono/node-server";
import edgeDoc from "../../docs/openapi/edge-node.json";
import { opsDocument } from "../../prewarm-scheduler/ops/openapi";
import { opsApp as realOpsApp, serveOps as realServeOps } from "../../prewarm-scheduler/ops/ops-api";
import type { Engine } from "../../prewarm-scheduler/runs/engine";
import { runningNodes } from "../../scripts/edge-node";
import { ApiDocument, EDGE_CHECK, OPS_CHECK } from "../openapi-check";

export const edgeApi = new ApiDocument(edgeDoc as Record<string, unknown>, EDGE_CHECK);
export const opsApi = new ApiDocument(opsDocument(), OPS_CHECK);

const problems: string[] = [];
const pending = new Set<Promise<void>>();
/** Answers checked so far in this file, by document title. */
export const checked = new Map<string, number>();
/** The answers checked so far in this file: `METHOD URL` (without its query). */
export const seen = new Set<string>();

function apiOf(url: string): ApiDocument | undefined {
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch {
    return undefined;
  }
  for (const n of runningNodes) {
    if (n.url === origin) return edgeApi;
    for (const p of n.processes().values()) if (p.url === origin) return edgeApi;
  }
  return undefined;
}

/** Checks `res` (a copy of its body) against `api`; what is wrong is reported after the test. */
export function observe(api: ApiDocument, method: string, url: string, res: Response): void {
  const p = res
    .clone()
    .text()
    .then(
      (body) => {
        checked.set(api.title, (checked.get(api.title) ?? 0) + 1);
        seen.add(`${method} ${url.split("?")[0]}`);
        problems.push(...api.check({ method, url, status: res.status, headers: res.headers, body }));
      },
      () => undefined, // the body was cut short (an aborted request): nothing to check
    )
    .finally(() => pending.delete(p));
  pending.add(p);
}

const realFetch = globalThis.fetch;
globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const res = await realFetch(input, init);
  const url = input instanceof Request ? input.url : String(input);
  const api = apiOf(url);
  if (api) observe(api, init?.method ?? (input instanceof Request ? input.method : "GET"), url, res);
  return res;
};

/**
 * The ops API's app with every answer of its `fetch` checked: those it serves, those asked with
 * `request` (which calls `fetch`), and those the console asks it in process (its actions call
 * the app's `fetch` with the ops token).
 */
export function opsApp(engine: Engine): Hono {
  const app = realOpsApp(engine);
  const fetch = app.fetch;
  app.fetch = (req, ...rest) => {
    const answer = fetch(req, ...rest);
    const seen = (res: Response) => (observe(opsApi, req.method, req.url, res), res);
    return answer instanceof Promise ? answer.then(seen) : seen(answer);
  };
  return app;
}

/** The ops API served on `port` by the app above: every answer it gives is checked. */
export function serveOps(engine: Engine, port: number, hostname = "127.0.0.1"): Promise<ServerType> {
  return realServeOps(engine, port, hostname, opsApp(engine));
}

afterEach(async () => {
  await Promise.all([...pending]);
  const found = problems.splice(0);
  if (found.length > 0) throw new Error(`answers outside their OpenAPI document:\n${[...new Set(found)].join("\n")}`);
});

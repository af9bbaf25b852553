/**
 * Every answer the node tests receive from an edge node or the ops API is
 * checked against its OpenAPI document (issue 23 item 4): a setup file of the
 * node projects. `fetch` is wrapped: an answer from a running node of the
 * project's bundle (`runningNodes`: its socket or a process's probe port), or
 * from an ops API served by `serveOps` below, is checked (status, headers,
 * body); so is every answer of an app made by `opsApp` below (the tests that
 * ask the ops API in process). Whatever does not match its document fails
 * the test that received it, in `afterEach`, with what was wrong.
 */
import { afterEach } from "vitest";
import type { Hono } from "hono";
import type { ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import edgeDoc from "../../docs/openapi/edge-node.json";
import { opsDocument } from "../../prewarm-scheduler/ops/openapi";
import { opsApp as realOpsApp, serveOps as realServeOps } from "../../prewarm-scheduler/ops/ops-api";
import type { Engine } from "../../prewarm-scheduler/runs/engine";
import { runningNodes } from "../../scripts/edge-node";
import { ApiDocument } from "../openapi-check";

export const edgeApi = new ApiDocument(edgeDoc as Record<string, unknown>);
export const opsApi = new ApiDocument(opsDocument());

const opsOrigins = new Set<string>();
const problems: string[] = [];
const pending = new Set<Promise<void>>();
/** Answers checked so far in this file, by document title. */
export const checked = new Map<string, number>();

function apiOf(url: string): ApiDocument | undefined {
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch {
    return undefined;
  }
  if (opsOrigins.has(origin)) return opsApi;
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

/** The ops API's app whose answers to `request` and `fetch` are checked. */
export function opsApp(engine: Engine): Hono {
  const app = realOpsApp(engine);
  const request = app.request;
  app.request = (input, init, ...rest) => {
    const url = input instanceof Request ? input.url : new URL(String(input), "http://localhost").href;
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const answer = request(input, init, ...rest);
    return answer instanceof Promise ? answer.then((res) => (observe(opsApi, method, url, res), res)) : (observe(opsApi, method, url, answer), answer);
  };
  return app;
}

/** The ops API served on `port`; the answers the tests fetch from it are checked. */
export async function serveOps(engine: Engine, port: number, hostname = "127.0.0.1"): Promise<ServerType> {
  const server = await realServeOps(engine, port, hostname);
  opsOrigins.add(`http://${hostname}:${(server.address() as AddressInfo).port}`);
  return server;
}

afterEach(async () => {
  await Promise.all([...pending]);
  const found = problems.splice(0);
  if (found.length > 0) throw new Error(`answers outside their OpenAPI document:\n${[...new Set(found)].join("\n")}`);
});

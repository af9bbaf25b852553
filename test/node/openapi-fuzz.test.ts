/**
 * A fuzzing pass from the OpenAPI documents (issue 23 item 4): for every
 * operation of a real edge node (two processes, its edge Redis, the reference
 * aggregator) and of a real ops API (served over HTTP, on its Redis, with the
 * fleet of two nodes), requests made by fast-check from the operation's
 * document (bodies and parameters generated from its schemas) and their
 * mutations (wrong types, missing fields, huge arrays, odd strings, other
 * content types, missing or wrong tokens). Every answer must be in the
 * document (status, headers, body), none a 500, and the servers must keep
 * answering. `FUZZ_RUNS` requests per operation (default 300).
 */
import fc from "fast-check";
import type { ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { edgeApi, opsApi, opsApp, serveOps } from "./openapi-answers";
import { TOKEN, useStack } from "./scheduler/stack";
import { opsDocument } from "../../prewarm-scheduler/ops/openapi";
import { OPS_CHECK, type ApiDocument } from "../openapi-check";
import { Engine } from "../../prewarm-scheduler/runs/engine";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 300);
const OPS_TOKEN = "ops-fuzz-secret-token";
const REGISTRY_TOKEN = "registry-fuzz-secret";

type Json = Record<string, unknown>;

/** Values of a JSON Schema (the subset zod writes), `refs` resolving #/components/schemas/…, at most `depth` levels. */
function fromSchema(s: Json, doc: Json, depth = 4): fc.Arbitrary<unknown> {
  if (typeof s["$ref"] === "string") {
    const name = (s["$ref"] as string).split("/").pop()!;
    return fromSchema(((doc["components"] as Json)["schemas"] as Json)[name] as Json, doc, depth);
  }
  if (Array.isArray(s["anyOf"])) return fc.oneof(...(s["anyOf"] as Json[]).map((x) => fromSchema(x, doc, depth)));
  if ("const" in s) return fc.constant(s["const"]);
  if (Array.isArray(s["enum"])) return fc.constantFrom(...(s["enum"] as unknown[]));
  const type = Array.isArray(s["type"]) ? (s["type"] as string[]) : [s["type"] as string | undefined];
  const one = (t: string | undefined): fc.Arbitrary<unknown> => {
    switch (t) {
      case "string":
        if (typeof s["pattern"] === "string") return fc.stringMatching(new RegExp(s["pattern"] as string)).filter((x) => x.length <= ((s["maxLength"] as number) ?? 10_000));
        return fc.string({ minLength: (s["minLength"] as number) ?? 0, maxLength: Math.min((s["maxLength"] as number) ?? 40, 40) });
      case "integer":
        return fc.integer({ min: Math.max((s["minimum"] as number) ?? -1e6, -1e9), max: Math.min((s["maximum"] as number) ?? 1e6, 1e9) });
      case "number":
        return fc.double({ min: (s["minimum"] as number) ?? -1e6, max: (s["maximum"] as number) ?? 1e6, noNaN: true });
      case "boolean":
        return fc.boolean();
      case "array":
        if (depth <= 0) return fc.constant([]);
        return fc.array(fromSchema((s["items"] as Json) ?? {}, doc, depth - 1), { minLength: (s["minItems"] as number) ?? 0, maxLength: Math.min((s["maxItems"] as number) ?? 5, 5) });
      case "object": {
        if (depth <= 0) return fc.constant({});
        const props = (s["properties"] as Record<string, Json>) ?? {};
        const required = (s["required"] as string[]) ?? [];
        return fc.record(Object.fromEntries(Object.entries(props).map(([k, v]) => [k, fromSchema(v, doc, depth - 1)])), { requiredKeys: required.filter((k) => k in props) });
      }
      default:
        return fc.jsonValue({ maxDepth: 2 });
    }
  };
  return fc.oneof(...type.map(one));
}

/** Odd strings: empty, long, unicode, escapes, path tricks. */
const oddString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom("", " ", "..", "%", "%zz", "a/b", "\u0000", "\ud800", "x".repeat(5000), "-1", "1e309", "null", "<script>", "😀", "cn-east", "sku-1"),
);

/** A body for `schema`: valid, or mutated (wrong types, fields dropped, huge arrays, anything). */
function bodyFor(schema: Json, doc: Json): fc.Arbitrary<unknown> {
  const valid = fromSchema(schema, doc);
  return fc.oneof(
    { weight: 3, arbitrary: valid },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 1, arbitrary: valid.chain((v) => (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 ? fc.constantFrom(...Object.keys(v)).map((k) => ({ ...v, [k]: undefined })) : fc.constant(v))) },
    { weight: 1, arbitrary: valid.chain((v) => (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 ? fc.tuple(fc.constantFrom(...Object.keys(v)), fc.jsonValue({ maxDepth: 1 })).map(([k, x]) => ({ ...v, [k]: x })) : fc.constant(v))) },
    { weight: 1, arbitrary: valid.map((v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? { ...v, skus: Array.from({ length: 1200 }, (_, i) => `s${i}`), tags: Array.from({ length: 40 }, (_, i) => `label:${i}`) } : v)) },
  );
}

/** A path segment: `v` %-encoded, or a lone surrogate's bytes as they would come over the wire (encodeURIComponent refuses it). */
function segment(v: string): string {
  try {
    return encodeURIComponent(v);
  } catch {
    return "%ED%A0%80";
  }
}

interface Target {
  api: ApiDocument;
  doc: Json;
  base: () => string;
  token: string;
  /** Values a path parameter often takes (real ones, so the operation goes past its lookup). */
  known: Record<string, string[]>;
  skip?: (method: string, template: string) => boolean;
}

interface Tally {
  operations: number;
  requests: number;
  byStatus: Map<number, number>;
}

async function fuzz(t: Target, tally: Tally): Promise<void> {
  for (const op of t.api.operations()) {
    if (t.skip?.(op.method, op.template)) continue;
    const spec = ((t.doc["paths"] as Json)[op.template] as Json)[op.method.toLowerCase()] as Json;
    const params = ((spec["parameters"] as Json[]) ?? []).filter((p) => p["in"] !== "header");
    const body = spec["requestBody"] ? (((spec["requestBody"] as Json)["content"] as Json)["application/json"] as Json)["schema"] as Json : undefined;
    const paramArb = fc.record(
      Object.fromEntries(params.map((p) => [p["name"] as string, fc.oneof(fromSchema(p["schema"] as Json, t.doc), oddString, fc.constantFrom(...(t.known[p["name"] as string] ?? ["x"])))])),
      { requiredKeys: params.filter((p) => p["in"] === "path").map((p) => p["name"] as string) },
    );
    const auth = fc.constantFrom<"right" | "wrong" | "none" | "malformed">("right", "right", "right", "wrong", "none", "malformed");
    const contentType = fc.constantFrom("application/json", "application/json", "application/json", "text/plain", "application/msgpack", "");
    tally.operations++;
    await fc.assert(
      fc.asyncProperty(paramArb, body ? bodyFor(body, t.doc) : fc.constant(undefined), auth, contentType, fc.boolean(), async (ps, b, who, type, onlyIfCached) => {
        let path = op.template;
        const query = new URLSearchParams();
        for (const p of params) {
          const v = (ps as Record<string, unknown>)[p["name"] as string];
          if (v === undefined) continue;
          if (p["in"] === "path") path = path.replace(`{${p["name"] as string}}`, segment(String(v)));
          else query.set(p["name"] as string, String(v));
        }
        const url = `${t.base()}${path}${query.size > 0 ? `?${query}` : ""}`;
        const headers: Record<string, string> = {};
        if (who === "right") headers["Authorization"] = `Bearer ${t.token}`;
        if (who === "wrong") headers["Authorization"] = "Bearer not-the-token";
        if (who === "malformed") headers["Authorization"] = "Basic Zm9vOmJhcg==";
        if (onlyIfCached) headers["Cache-Control"] = "only-if-cached";
        if (body !== undefined && type !== "") headers["Content-Type"] = type;
        const res = await fetch(url, { method: op.method, headers, ...(body !== undefined && op.method !== "GET" ? { body: JSON.stringify(b) ?? "" } : {}), signal: AbortSignal.timeout(20_000) });
        const text = await res.text();
        tally.requests++;
        tally.byStatus.set(res.status, (tally.byStatus.get(res.status) ?? 0) + 1);
        expect(res.status, `${op.method} ${url} answered ${res.status}: ${text.slice(0, 300)}`).not.toBe(500);
        expect(t.api.check({ method: op.method, url, status: res.status, headers: res.headers, body: text })).toEqual([]);
        if (op.template === "/openapi.json" || text.length < 100_000) expect(text).not.toContain(t.token);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
  }
}

describe("fuzzing both APIs from their OpenAPI documents", () => {
  const t = useStack(50);
  let ops: ServerType;
  let engine: Engine;
  let opsUrl = "";
  const tally: Tally = { operations: 0, requests: 0, byStatus: new Map() };

  beforeAll(async () => {
    // The file's own engine (useStack closes its engines after each test), with no workers: runs are queued, not sent.
    engine = new Engine(t.stack.config({ opsToken: OPS_TOKEN, registryToken: REGISTRY_TOKEN }));
    ops = await serveOps(engine, 0, "127.0.0.1");
    opsUrl = `http://127.0.0.1:${(ops.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    ops?.close();
    await engine?.close();
    console.log(`openapi fuzz: ${tally.operations} operations, ${tally.requests} requests, by status ${JSON.stringify(Object.fromEntries([...tally.byStatus].sort((a, b) => a[0] - b[0])))}`);
  });

  it("the node and the ops API serve their documents at /openapi.json with no token, and the ops one names no secret", async () => {
    const node = await fetch(`${t.stack.edges[0]!.node.url}/openapi.json`);
    expect(node.status).toBe(200);
    expect(await node.json()).toEqual(JSON.parse(JSON.stringify((await import("../../docs/openapi/edge-node.json")).default)));
    const o = await fetch(`${opsUrl}/openapi.json`);
    expect(o.status).toBe(200);
    const text = await o.text();
    expect(JSON.parse(text)).toEqual(opsDocument());
    for (const secret of [OPS_TOKEN, REGISTRY_TOKEN, TOKEN, t.stack.schedulerRedis.url]) expect(text).not.toContain(secret);
  });

  it("every route of the ops API is an operation of its document, so the fuzzing asks it (the console's pages and the job board aside), and every operation is a route", () => {
    const routes = opsApp(engine)
      .routes.filter((r) => r.method !== "ALL" && !OPS_CHECK.outside!.test(r.path))
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, "{$1}")}`);
    expect([...new Set(routes)].sort()).toEqual(opsApi.operations().map((o) => `${o.method} ${o.template}`).sort());
  });

  it("the ops API answers any Authorization but its bearer token 401 unauthorized, with a message (fuzz: Basic got 400 with none)", async () => {
    for (const header of ["Basic Zm9vOmJhcg==", "Bearer wrong", "Bearer", ""]) {
      const res = await fetch(`${opsUrl}/metrics`, { headers: header ? { Authorization: header } : {} });
      expect(res.status, header).toBe(401);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "unauthorized", message: expect.stringMatching(/token/) });
    }
  });

  it("the edge node: no 500, no answer outside its document, for every operation", { timeout: 300_000 }, async () => {
    const node = t.stack.edges[0]!.node;
    await fuzz({ api: edgeApi, doc: JSON.parse(JSON.stringify((await import("../../docs/openapi/edge-node.json")).default)) as Json, base: () => node.url, token: TOKEN, known: { sku: t.stack.skus.slice(0, 5), ids: [t.stack.skus.slice(0, 3).join(","), "a,b,,c"], region: ["cn-east", "cn-north", ""] } }, tally);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it("the ops API: no 500, no answer outside its document, for every operation", { timeout: 300_000 }, async () => {
    await fuzz({ api: opsApi, doc: opsDocument(), base: () => opsUrl, token: OPS_TOKEN, known: { id: ["nope"], name: ["edge-east", "nope"], plan: ["nope"] } }, tally);
    expect((await fetch(`${opsUrl}/healthz`)).status).toBe(200);
  });
});

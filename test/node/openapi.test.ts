/** The OpenAPI documents in docs/openapi/ are what the code generates (`npm run openapi`), and valid OpenAPI 3.1 in their outline. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OPENAPI_DIR, openapiFiles } from "../../scripts/openapi";
import { edgeApi, opsApi } from "./openapi-answers";

describe("the OpenAPI documents", () => {
  it("docs/openapi/ holds what the schemas generate (run npm run openapi after changing them)", () => {
    for (const { file, text } of openapiFiles()) expect(readFileSync(path.join(OPENAPI_DIR, file), "utf8"), file).toBe(text);
  });

  it("are OpenAPI 3.1 documents whose every operation documents its answers and an error body with codes", () => {
    for (const { text } of openapiFiles()) {
      const doc = JSON.parse(text) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };
      expect(doc.openapi).toBe("3.1.0");
      for (const [p, methods] of Object.entries(doc.paths)) {
        for (const [m, op] of Object.entries(methods)) {
          const statuses = Object.keys(op.responses);
          expect(statuses.some((s) => s.startsWith("2")), `${m} ${p}`).toBe(true);
          for (const s of statuses.filter((s) => Number(s) >= 400)) expect(JSON.stringify(op.responses[s]!.content), `${m} ${p} ${s}`).toMatch(/"code":\{"type":"string","enum":\[|"code":\{"type":"string","const":"not_all_purged"\}|^\{"application\/json":\{"schema":\{"\$ref":"#\/components\/schemas\/Health"\}\}\}$|"required":\["ok"\]/);
        }
      }
    }
  });

  it("the answer check fails an answer to an operation its document lacks, and lets through only the API's own answer to a route it does not have", () => {
    const json = new Headers({ "Content-Type": "application/json" });
    const answer = (method: string, url: string, status: number, body: unknown) => ({ method, url, status, headers: json, body: JSON.stringify(body) });
    // A route the document lacks (as GET /v1/hot was, when the console added it), a method it does not document.
    expect(opsApi.check(answer("GET", "/v1/undocumented?top=5", 200, { key: "hot:fleet", skus: [] }))).toEqual([expect.stringMatching(/^GET \/v1\/undocumented answered 200, but the document has no operation GET \/v1\/undocumented/)]);
    expect(opsApi.check(answer("PUT", "/v1/runs", 200, { runs: [] }))).toHaveLength(1);
    expect(edgeApi.check(answer("HEAD", "/v1/skus/abc", 200, {}))).toHaveLength(1);
    // Even a 404 or a 401, unless it is the API's error body with its no-route code.
    expect(opsApi.check(answer("GET", "/v1/nope", 404, { error: { code: "no_route", message: "x" } }))).toHaveLength(1);
    expect(opsApi.check(answer("GET", "/v1/nope", 404, { error: { code: "not_found", message: "x" }, extra: 1 }))).toHaveLength(1);
    expect(opsApi.check({ ...answer("GET", "/v1/nope", 404, {}), body: "404 Not Found", headers: new Headers({ "Content-Type": "text/plain" }) })).toHaveLength(1);
    expect(opsApi.check(answer("GET", "/v1/nope", 404, { error: { code: "not_found", message: "no route for GET /v1/nope" } }))).toEqual([]);
    expect(opsApi.check(answer("GET", "/v1/nope", 401, { error: { code: "unauthorized", message: "missing Authorization: Bearer token" } }))).toEqual([]);
    expect(edgeApi.check(answer("GET", "/v2/nope", 404, { error: { code: "route_not_found", message: "no route for GET /v2/nope" } }))).toEqual([]);
    expect(edgeApi.check(answer("DELETE", "/v1/skus/abc", 405, { error: { code: "method_not_allowed", message: "DELETE is not allowed" } }))).toEqual([]);
    expect(edgeApi.check(answer("GET", "/v2/nope", 404, { error: { code: "not_found", message: "x" } }))).toHaveLength(1);
    // The console's pages and the job board share the ops API's origin but are not the API.
    for (const path of ["/", "/console/fleet", "/console/runs/r1", "/admin/queues/api/queues"]) expect(opsApi.check({ ...answer("GET", path, 200, {}), body: "<html>", headers: new Headers({ "Content-Type": "text/html" }) }), path).toEqual([]);
  });
});

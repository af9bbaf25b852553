/** The OpenAPI documents in docs/openapi/ are what the code generates (`npm run openapi`), and valid OpenAPI 3.1 in their outline. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OPENAPI_DIR, openapiFiles } from "../../scripts/openapi";

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
});

/** The worker tests' answers are checked against the node's OpenAPI document (test/worker/openapi-answers.ts, a setup file of the project). */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { tally } from "./openapi-answers";

describe("the answer check of the worker tests", () => {
  it("sees every answer of SELF.fetch", async () => {
    const before = tally.answers;
    await (await SELF.fetch("https://edge.test/healthz")).text();
    await (await SELF.fetch("https://edge.test/nope", { method: "POST" })).text();
    await new Promise((r) => setTimeout(r, 0));
    expect(tally.answers - before).toBe(2);
  });
});

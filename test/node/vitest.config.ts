/** Node-side tests: the reference regional aggregator, the scheduler, scripts. */
import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "node",
    root: path.resolve(import.meta.dirname, "../.."),
    include: ["test/node/**/*.test.ts"],
    // Every answer of a node or the ops API is checked against its OpenAPI document.
    setupFiles: ["test/node/openapi-answers.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

/** Node-side tests: the reference regional aggregator, the scheduler, scripts. */
import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "node",
    root: path.resolve(import.meta.dirname, "../.."),
    include: ["test/node/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

/** Two test projects: the worker inside workerd, and the Node-side services. */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: ["test/worker/vitest.config.ts", "test/node/vitest.config.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});

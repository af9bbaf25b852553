/** Test projects: the worker inside workerd, the Node-side services, and the scheduler again on a Redis Cluster. */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: ["test/worker/vitest.config.ts", "test/node/vitest.config.ts", "test/node/vitest.cluster.config.ts"],
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});

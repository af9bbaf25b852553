/** The scheduler's tests again, on a Redis Cluster of 3 primaries started on loopback (test/node/scheduler/stack.ts). */
import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "node-cluster",
    root: path.resolve(import.meta.dirname, "../.."),
    include: ["test/node/scheduler.test.ts", "test/node/scheduler-retention.test.ts", "test/node/scheduler-refresh.test.ts", "test/node/scheduler-purge.test.ts"],
    env: { SCHEDULER_REDIS: "cluster" },
    setupFiles: ["test/node/openapi-answers.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

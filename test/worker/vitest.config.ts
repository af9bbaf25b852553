/**
 * Worker tests run inside workerd (@cloudflare/vitest-plugin) against a real
 * redis-server and the reference regional aggregator started by
 * test/worker/global-setup.ts, and the real go-stock.wasm.
 */
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { builtinModules } from "node:module";
import path from "node:path";
import { defineConfig } from "vitest/config";

const root = path.resolve(import.meta.dirname, "../..");
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: path.join(root, "wrangler.toml") },
      miniflare: {
        bindings: {
          EDGE_REDIS_URL: inject("redisUrl"),
          EDGE_REGION: "cn-east",
          PREWARM_TOKEN: inject("prewarmToken"),
          CACHE_TTL_SECONDS: "30",
          REGIONAL_URL: inject("regionalUrl"),
          // Above what 1,000 concurrent requests in this one isolate cost the
          // computing request's timers (the coalescing test), below the 1 s
          // latency the slow-region test injects.
          EDGE_REDIS_TIMEOUT_MS: "400",
          REGIONAL_TIMEOUT_MS: "400",
          // Small numbers so that breaker and stale tests run in seconds.
          REGIONAL_BREAKER_THRESHOLD: "3",
          REGIONAL_BREAKER_HALF_OPEN_MS: "1000",
          STALE_WHILE_REVALIDATE_SECONDS: "2",
          STALE_IF_ERROR_SECONDS: "60",
        },
        // A Workers KV namespace for the data-centre tests, which bind it as AGGREGATES_KV
        // themselves: every other test runs on the Cache API alone, as without the binding.
        kvNamespaces: ["TEST_GLOBAL_KV"],
      },
    })),
  ],
  test: {
    name: "worker",
    root,
    globalSetup: ["test/worker/global-setup.ts"],
    // Every answer of the worker is checked against its OpenAPI document.
    setupFiles: ["test/worker/openapi-answers.ts"],
    include: ["test/worker/**/*.test.ts"],
    // The pool resolves ioredis's require("debug") to ioredis's own debug.js
    // and recurses; pre-bundling ioredis (Node built-ins left to nodejs_compat) avoids it.
    deps: {
      optimizer: {
        ssr: { enabled: true, include: ["ioredis"], exclude: nodeBuiltins },
      },
    },
    // One shared Redis: files run one at a time so that Redis counters read by a test are its own.
    fileParallelism: false,
    testTimeout: 30_000,
  },
});

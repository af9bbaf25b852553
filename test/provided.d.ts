// Values test/global-setup.ts hands to the tests with provide().
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** redis://127.0.0.1:PORT of the private redis-server of this run. */
    redisUrl: string;
    /** The reference regional aggregator behind the worker, and its own Redis. */
    regionalUrl: string;
    regionalRedisUrl: string;
    /** Loopback control endpoint: POST /edge-redis/stop, /edge-redis/start. */
    controlUrl: string;
    /** The PREWARM_TOKEN the worker under test is configured with. */
    prewarmToken: string;
    /** SPEC §9: the first 12 hex digits of the SHA-256 of build/go-stock.wasm, as the test run found it. */
    rulesVersion: string;
    /** The text of ../shared/fixtures/conformance.json. */
    conformance: string;
  }
}

/**
 * A real stack for the scheduler's tests: two edge nodes in two regions (each
 * a self-hosted node as deployed, with its own seeded Redis) and the
 * scheduler's own Redis. Each test gets its own key prefix, so its queues and
 * runs are its own.
 */
import { randomUUID } from "node:crypto";
import Redis from "ioredis";
import { afterAll, afterEach, beforeAll } from "vitest";
import { Engine } from "../../../prewarm-scheduler/runs/engine";
import { demoCatalog, seedCatalog } from "../../../records/demo-catalog";
import { parseConfig, type SchedulerConfig, type SchedulerConfigInput } from "../../../prewarm-scheduler/config/config";
import { startEdgeNode, type EdgeNode } from "../../../scripts/edge-node";
import { freePort, startRedis, startRedisCluster } from "../../../scripts/redis-server";

/** SCHEDULER_REDIS=cluster runs the scheduler's tests on a Redis Cluster of 3 primaries (the `node-cluster` project). */
export const CLUSTER = process.env["SCHEDULER_REDIS"] === "cluster";

export const TOKEN = "sched-test-token";

export interface Stack {
  /** The scheduler's Redis: one server, or (CLUSTER) a node of a 3-primary cluster. */
  schedulerRedis: { url: string; stop(): Promise<void> };
  edges: { name: string; region: string; node: EdgeNode; redis: { url: string; stop(): Promise<void> } }[];
  skus: string[];
  config(overrides?: Partial<SchedulerConfigInput>): SchedulerConfig;
  /** A node entry for an address where nothing listens. */
  deadNode(): Promise<{ name: string; url: string; region: string }>;
  /** edge_prewarm_skus_total{result="warmed"} of a node. */
  warmedCounter(url: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startStack(skuCount: number): Promise<Stack> {
  const schedulerRedis = CLUSTER ? await startRedisCluster(3) : await startRedis();
  const catalog = demoCatalog(skuCount, Date.now(), Date.now() + 3_600_000);
  const edges: Stack["edges"] = [];
  try {
    for (const [name, region] of [["edge-east", "cn-east"], ["edge-north", "cn-north"]] as const) {
      const redis = await startRedis();
      const c = new Redis(redis.url);
      await seedCatalog(c, catalog);
      c.disconnect();
      const node = await startEdgeNode({ vars: { EDGE_REGION: region, EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: TOKEN } });
      edges.push({ name, region, node, redis });
    }
  } catch (e) {
    for (const e2 of edges) await Promise.all([e2.node.stop(), e2.redis.stop()]);
    await schedulerRedis.stop();
    throw e;
  }
  return {
    schedulerRedis,
    edges,
    skus: catalog.map((r) => r.sku),
    config: (overrides = {}) =>
      parseConfig({
        redis: schedulerRedis.url,
        redisCluster: CLUSTER,
        prefix: `test-${randomUUID().slice(0, 8)}`,
        token: TOKEN,
        nodes: edges.map((e) => ({ name: e.name, url: e.node.url, region: e.region })),
        retry: { attempts: 3, backoffMs: 50 },
        requestTimeoutMs: 20_000,
        ...overrides,
      }),
    deadNode: async () => ({ name: "edge-dead", url: `http://127.0.0.1:${await freePort()}`, region: "us-west" }),
    warmedCounter: async (url) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^edge_prewarm_skus_total\{result="warmed"\} (\d+)/m.exec(text)?.[1] ?? 0);
    },
    stop: async () => {
      for (const e of edges) await Promise.all([e.node.stop(), e.redis.stop()]);
      await schedulerRedis.stop();
    },
  };
}

/**
 * A test file's stack and its engines: the stack started before the file's
 * tests, every engine a test made closed after it, the stack stopped at the
 * end. `engine` starts its workers unless told not to.
 */
export function useStack(skuCount: number): { stack: Stack; engine: (cfg: SchedulerConfig, work?: boolean) => Engine } {
  const engines: Engine[] = [];
  const t = {
    /** Set before the file's first test. */
    stack: undefined as unknown as Stack,
    engine: (cfg: SchedulerConfig, work = true): Engine => {
      const e = new Engine(cfg);
      engines.push(e);
      if (work) e.startWorkers();
      return e;
    },
  };
  beforeAll(async () => {
    t.stack = await startStack(skuCount);
  }, 120_000);
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.close()));
  });
  afterAll(async () => {
    await t.stack?.stop();
  });
  return t;
}

/** Polls until `read` gives a value `done` accepts, or fails after `ms`. */
export async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`not reached within ${ms} ms: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The scheduler reads a node's answers by own keys only: a SKU id or a code
 * that names a member of Object.prototype (`constructor`, `valueOf`) is data
 * like any other. Real Redis; the nodes are small HTTP servers answering what
 * a real node never sends (a `cachedUntil` without an entry for an aggregate,
 * a code outside the contract's list), which is what these checks guard.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../prewarm-scheduler/config/config";
import { Engine } from "../../prewarm-scheduler/runs/engine";
import { parsePlan } from "../../prewarm-scheduler/plans/plan";
import { watchRun } from "../../prewarm-scheduler/cli/progress";
import { verifyPlan } from "../../prewarm-scheduler/fleet/verify";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";

let redis: RedisProcess;
const servers: Server[] = [];
const engines: Engine[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});
afterAll(async () => {
  await redis?.stop();
});

/** A node at a free loopback port that answers every request with `answer(req)` as JSON. */
async function node(answer: (req: IncomingMessage) => unknown): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(answer(req)));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const config = (url: string) =>
  parseConfig({
    redis: redis.url,
    prefix: `ids-${Math.random().toString(36).slice(2, 10)}`,
    token: "fleet-secret",
    nodes: [{ name: "edge-odd", url, region: "cn-east" }],
    retry: { attempts: 2, backoffMs: 50 },
  });

describe("verify", () => {
  it("takes a SKU called constructor with no cachedUntil entry as valid until its validUntil, and counts a node's code valueOf as a reason", async () => {
    const now = Date.now();
    const url = await node(() => ({
      region: "cn-east",
      aggregates: [{ sku: "constructor", validUntil: now + 3_600_000 }],
      failed: [{ sku: "toString", code: "valueOf" }],
      cachedUntil: {},
    }));
    const plan = parsePlan({ name: "ids", skus: { list: ["constructor", "toString"] }, verify: { margin: "1m" } });
    const r = await verifyPlan(config(url), plan, ["constructor", "toString"], { now });
    expect(r.nodes.map((n) => [n.name, n.ready, n.stragglers, n.samples])).toEqual([["edge-odd", 1, { valueOf: 1 }, [{ sku: "toString", reason: "valueOf" }]]]);
  });
});

describe("a run", () => {
  it("counts a node's failure code constructor as a number, like any code", async () => {
    const url = await node(() => ({ jobId: "j", region: "cn-east", warmed: 1, fromEdge: 1, fromRegional: 0, failed: [{ sku: "b", code: "constructor" }], durationMs: 1 }));
    const e = new Engine(config(url));
    engines.push(e);
    e.startWorkers();
    const r = await watchRun(e, await e.startRun(parsePlan({ name: "ids", skus: { list: ["a", "b"] }, ttl: 60 })), { bars: false, pollMs: 50 });
    expect(r.nodes.map((n) => [n.name, n.warmed, n.failed, n.failedByCode])).toEqual([["edge-odd", 1, 1, { constructor: 1 }]]);
  }, 30_000);
});

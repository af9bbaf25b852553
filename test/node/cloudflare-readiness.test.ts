/**
 * `prewarm verify` and `prewarm check` against a Cloudflare-like node: the
 * worker under `wrangler dev` (workerd with the Cache API and a local Workers
 * KV namespace bound as AGGREGATES_KV, as a Cloudflare deployment with the
 * global tier), its own real Redis seeded with the demo catalogue.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Redis from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPlan } from "../../prewarm-scheduler/runs/check";
import { parseConfig, type SchedulerConfig } from "../../prewarm-scheduler/config/config";
import { Engine } from "../../prewarm-scheduler/runs/engine";
import { parsePlan } from "../../prewarm-scheduler/plans/plan";
import { verifyPlan } from "../../prewarm-scheduler/fleet/verify";
import { demoCatalog, seedCatalog } from "../../records/demo-catalog";
import { freePort, startRedis } from "../../scripts/redis-server";

const ROOT = path.resolve(import.meta.dirname, "../..");
const TOKEN = "cf-test-token";
const SKUS = 50;

let edgeRedis: Awaited<ReturnType<typeof startRedis>>;
let schedulerRedis: Awaited<ReturnType<typeof startRedis>>;
let dir: string;
let wrangler: ChildProcess;
let url: string;
let skus: string[];

/** The worker as Cloudflare runs it with the global tier: wrangler dev, with a KV namespace bound as AGGREGATES_KV. */
async function startCloudflareLikeNode(redisUrl: string): Promise<string> {
  dir = mkdtempSync(path.join(tmpdir(), "cf-node-"));
  const port = await freePort();
  writeFileSync(
    path.join(dir, "wrangler.toml"),
    [
      `name = "edge-prewarm-cf-test"`,
      `main = ${JSON.stringify(path.join(ROOT, "worker/index.ts"))}`,
      `compatibility_date = "2026-11-01"`,
      `compatibility_flags = ["nodejs_compat"]`,
      `[[kv_namespaces]]`,
      `binding = "AGGREGATES_KV"`,
      `id = "local-test"`,
      `[vars]`,
      `EDGE_REGION = "cn-east"`,
      `EDGE_REDIS_URL = ${JSON.stringify(redisUrl)}`,
      `PREWARM_TOKEN = ${JSON.stringify(TOKEN)}`,
    ].join("\n"),
  );
  wrangler = spawn(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "dev", "--config", path.join(dir, "wrangler.toml"), "--ip", "127.0.0.1", "--port", String(port), "--persist-to", path.join(dir, "state")], {
    cwd: ROOT,
    stdio: "ignore",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
  });
  const base = `http://127.0.0.1:${port}`;
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).status === 200) return base;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error("wrangler dev did not answer /healthz within 60 s");
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  edgeRedis = await startRedis();
  schedulerRedis = await startRedis();
  const catalog = demoCatalog(SKUS, Date.now(), Date.now() + 3_600_000);
  skus = catalog.map((r) => r.sku);
  const c = new Redis(edgeRedis.url);
  await seedCatalog(c, catalog);
  c.disconnect();
  url = await startCloudflareLikeNode(edgeRedis.url);
}, 120_000);

afterAll(async () => {
  if (wrangler?.exitCode === null) {
    const gone = new Promise((r) => wrangler.once("exit", r));
    wrangler.kill("SIGTERM");
    await gone;
  }
  await edgeRedis?.stop();
  await schedulerRedis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(kind?: "cloudflare", maxSkusPerSecond?: number): SchedulerConfig {
  return parseConfig({
    redis: schedulerRedis.url,
    prefix: `cf-${Math.random().toString(36).slice(2, 8)}`,
    token: TOKEN,
    nodes: [{ name: "edge-cf", url, region: "cn-east", ...(kind ? { kind } : {}), ...(maxSkusPerSecond ? { maxSkusPerSecond } : {}) }],
  });
}

describe("a Cloudflare node with Workers KV", () => {
  it("says on /healthz that what it warms reaches every data centre, and how long that takes", async () => {
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ store: "cache-api", scope: "global", propagationMs: 60_000 });
  });

  it("prewarm verify reports a key warmed less than KV's propagation ago as propagating (not ready, not to re-warm), and ready after it", async () => {
    const res = await fetch(`${url}/v1/prewarm`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ skus, ttl: 600 }) });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { warmed: number; scope: string; globalAt: number };
    expect(answer).toMatchObject({ warmed: SKUS, scope: "global" });

    const plan = parsePlan({ name: "cf-plan", skus: { list: skus }, ttl: 600 });
    const now = await verifyPlan(config(), plan, skus, { collect: true });
    expect(now.nodes.map((n) => [n.name, n.ready, n.stragglers, n.stragglerSkus])).toEqual([["edge-cf", 0, { propagating: SKUS }, []]]);
    expect(now.met).toBe(false);

    const later = await verifyPlan(config(), plan, skus, { now: answer.globalAt });
    expect(later.nodes.map((n) => [n.ready, n.stragglers])).toEqual([[SKUS, {}]]);
    expect(later.met).toBe(true);
  });

  it("prewarm check leaves KV's propagation before T0 on a node of kind cloudflare", async () => {
    // 50 SKUs at 10 SKUs/s: 5 s to warm. A 40 s lead is enough for a self-hosted node, not for 5 s + 60 s.
    const campaign = (lead: string) => parsePlan({ name: "cf-campaign", skus: { list: skus }, ttl: 600, schedule: { campaign: { t0: "2030-11-11T00:00:00Z", lead, refreshEvery: "5m", until: "5s" } } });
    for (const [kind, lead, ok] of [[undefined, "40s", true], ["cloudflare", "40s", false], ["cloudflare", "2m", true]] as const) {
      const cfg = config(kind, 10);
      const e = new Engine(cfg);
      try {
        const r = await checkPlan(cfg, e.store, campaign(lead), skus);
        expect([kind, lead, r.ok]).toEqual([kind, lead, ok]);
        expect(r.nodes[0]).toMatchObject({ estimateMs: 5_000, propagationMs: kind ? 60_000 : 0 });
        if (!ok) expect(r.problems).toEqual([expect.stringMatching(/^edge-cf: warming 50 SKUs takes about 5\.0 s \+ 60 s for Workers KV to reach every data centre, but the campaign allows 40\.0 s/)]);
      } finally {
        await e.close();
      }
    }
  });
});

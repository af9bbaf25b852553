/**
 * `npm run screenshots`: the console's pages as PNGs in docs/console/, from
 * the real console (not drawn): it starts two self-hosted edge nodes (each
 * with its own seeded Redis), the scheduler's Redis, a scheduler (engine,
 * workers, the ops API with the console), drives the console in headless
 * Chromium (/usr/bin/chromium, or $CHROMIUM) and shoots each page at a
 * laptop's width (1280) and a phone's (390). Everything it starts, it stops.
 * `npm run screenshots -- api hot` shoots only those pages.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { Redis } from "ioredis";
import puppeteer, { type Page } from "puppeteer-core";
import { parseConfig } from "../prewarm-scheduler/config/config";
import { serveOps } from "../prewarm-scheduler/ops/ops-api";
import { Engine } from "../prewarm-scheduler/runs/engine";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode, type EdgeNode } from "./edge-node";
import { freePort, startRedis, type RedisProcess } from "./redis-server";

const OUT = path.resolve(import.meta.dirname, "../docs/console");
const TOKEN = "screenshots-fleet-token";
const OPS_TOKEN = "screenshots-ops-token";
const REGISTRY_TOKEN = "screenshots-registry-token";
const WIDTHS = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The pages to shoot (all when none is named). */
const ONLY = new Set(process.argv.slice(2));

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const stops: (() => Promise<void> | void)[] = [];
  try {
    const schedulerRedis = await startRedis();
    stops.push(() => schedulerRedis.stop());
    const catalog = demoCatalog(2000, Date.now(), Date.now() + 3_600_000);
    const edges: { name: string; region: string; node: EdgeNode; redis: RedisProcess }[] = [];
    for (const [name, region] of [["edge-sh-1", "cn-east"], ["edge-bj-1", "cn-north"]] as const) {
      const redis = await startRedis();
      stops.push(() => redis.stop());
      const c = new Redis(redis.url);
      await seedCatalog(c, catalog);
      c.disconnect();
      const node = await startEdgeNode({ vars: { EDGE_REGION: region, EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: TOKEN } });
      stops.push(() => node.stop());
      edges.push({ name, region, node, redis });
    }
    const dead = { name: "edge-gz-1", url: `http://127.0.0.1:${await freePort()}`, region: "cn-south" };
    const cfg = parseConfig({
      redis: schedulerRedis.url,
      prefix: "screenshots",
      token: TOKEN,
      opsToken: OPS_TOKEN,
      registryToken: REGISTRY_TOKEN,
      nodeUrlAllow: [edges[1]!.node.url],
      nodeAbsentAfterMs: 1500,
      nodes: [...edges.map((e) => ({ name: e.name, url: e.node.url, region: e.region })), dead],
      retry: { attempts: 1, backoffMs: 50 },
      requestTimeoutMs: 3000,
      maxSkusPerSecondPerNode: 400,
      batchSize: 50,
    });
    const engine = new Engine(cfg);
    engine.startWorkers();
    stops.push(() => engine.close());
    const server = await serveOps(engine, 0, "127.0.0.1");
    stops.push(() => void server.close());
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const api = async (p: string, body?: unknown): Promise<unknown> => {
      const res = await fetch(`${base}${p}`, { method: body === undefined ? "GET" : "POST", headers: { Authorization: `Bearer ${OPS_TOKEN}`, "Content-Type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      return res.json();
    };
    const skus = catalog.map((r) => r.sku);
    const settled = async (runId: string) => {
      for (;;) {
        if (((await api(`/v1/runs/${runId}`)) as { status: string }).status !== "running") return;
        await sleep(100);
      }
    };

    // What the pages show: a finished run with a dead node, a campaign (one node cold), a purge, hot SKUs,
    // a node that announced itself and one that stopped, and (shot while it runs) a run in progress.
    const withDead = (await api("/v1/runs", { plan: { name: "flash-sale-1111", skus: { list: skus.slice(0, 600) }, targets: "all", schedule: "once" } })) as { runId: string };
    await settled(withDead.runId);
    const t0 = new Date(Date.now() + 25 * 60_000).toISOString();
    const campaign = { name: "singles-day", skus: { list: skus.slice(0, 300) }, targets: { nodes: edges.map((e) => e.name) }, ttl: 7200, schedule: { campaign: { t0, lead: "20m", refreshEvery: "10m", until: "30m", verifyBefore: "10m" } } };
    await api("/v1/schedules", { plan: campaign });
    await api("/v1/schedules", { plan: { name: "nightly-top", skus: { hot: { key: "hot:fleet", top: 500 } }, schedule: { cron: "0 3 * * *" } } });
    const north = (await api("/v1/runs", { plan: { ...campaign, targets: { nodes: ["edge-bj-1"] }, schedule: "once" } })) as { runId: string };
    await settled(north.runId);
    for (const [i, sku] of skus.slice(0, 12).entries()) for (let k = 0; k < 12 - i; k++) await (await fetch(`${edges[i % 2]!.node.url}/v1/skus/${sku}`)).body?.cancel();
    await api("/v1/purge", { skus: [skus[7]!], by: "ops-oncall" });
    const announce = (name: string) => fetch(`${base}/v1/nodes/announce`, { method: "POST", headers: { Authorization: `Bearer ${REGISTRY_TOKEN}`, "Content-Type": "application/json" }, body: JSON.stringify({ name, url: edges[1]!.node.url, region: "cn-north", processes: 2, version: "0.1.0" }) });
    await announce("edge-bj-2");
    await sleep(1600); // edge-bj-2 stops: absent
    const beat = setInterval(() => void announce("edge-bj-3"), 300);
    stops.push(() => clearInterval(beat));
    await announce("edge-bj-3");

    const browser = await puppeteer.launch({ executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    stops.push(() => browser.close());
    const page = await browser.newPage();
    page.on("dialog", (d) => void d.accept());
    const shoot = async (name: string, prepare: (p: Page) => Promise<void>) => {
      if (ONLY.size > 0 && !ONLY.has(name)) return;
      for (const w of WIDTHS) {
        await page.setViewport({ width: w.width, height: w.height });
        await prepare(page);
        await sleep(300);
        const file = path.join(OUT, `${name}-${w.name}.png`);
        await page.screenshot({ path: file as `${string}.png` });
        console.log(`wrote ${path.relative(process.cwd(), file)}`);
      }
    };
    await shoot("signin", async (p) => {
      await p.goto(`${base}/`, { waitUntil: "load" });
    });
    await page.goto(`${base}/`, { waitUntil: "load" }); // the sign-in (also when it was not shot)
    await page.type("#token", OPS_TOKEN);
    await Promise.all([page.waitForNavigation(), page.click("#signin")]);

    await page.goto(`${base}/console/hot`, { waitUntil: "load" });
    await page.click("#collect-hot");
    await page.waitForSelector("#hot tbody tr");
    await page.goto(`${base}/console/campaigns/singles-day`, { waitUntil: "load" });
    await page.click("#verify-now");
    await page.waitForSelector('#readiness tr[data-node="edge-sh-1"]');

    await shoot("now", async (p) => {
      const r = (await api("/v1/runs", { plan: { name: "price-drop", skus: { list: skus }, targets: { nodes: edges.map((e) => e.name) }, schedule: "once" } })) as { runId: string };
      await p.goto(`${base}/`, { waitUntil: "domcontentloaded" });
      await p.waitForFunction((id) => Array.from(document.querySelectorAll(`.run[data-run="${id}"] .node`)).some((n) => Number(n.getAttribute("data-warmed")) > 300), { timeout: 20_000 }, r.runId);
    });
    await shoot("run", async (p) => {
      await p.goto(`${base}/console/runs/${withDead.runId}`, { waitUntil: "load" });
    });
    await shoot("campaign", async (p) => {
      await p.goto(`${base}/console/campaigns/singles-day`, { waitUntil: "load" });
    });
    await shoot("fleet", async (p) => {
      await p.goto(`${base}/console/fleet`, { waitUntil: "domcontentloaded" });
      await p.waitForSelector('#absent-nodes tr[data-node="edge-bj-2"]');
    });
    await shoot("hot", async (p) => {
      await p.goto(`${base}/console/hot`, { waitUntil: "load" });
    });
    await shoot("api", async (p) => {
      // The read, opened from its link: its headers, answers and error codes.
      await p.goto(`${base}/console/api#edge-getSku`, { waitUntil: "load" });
    });
    const purges = (await api("/v1/purges")) as { purges: { purgeId: string }[] };
    await shoot("purge", async (p) => {
      await p.goto(`${base}/console/purges/${purges.purges[0]!.purgeId}`, { waitUntil: "load" });
    });
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch((e: Error) => console.error(`stopping: ${e.message}`));
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

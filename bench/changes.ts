/**
 * `npm run bench:changes`: how long a changed record takes to be served by
 * the node as deployed (SPEC §7: within 1 s), at 1,000 changes per second.
 *
 * A node (2 processes) with 20,000 warm SKUs. In each round of ROUND_SECONDS,
 * a writer changes the price record of random warm SKUs at 1,000 per second
 * (the background), and 20 times a second the price of a tracked SKU (its own
 * range, each used once) to an amount of its own; a reader polls that SKU on
 * the node every 10 ms until the new amount is served. The delay is from the
 * write's reply to the first answer carrying it.
 *
 * Baseline, in the same run: the same tracked changes with the change watch
 * off and the writer sending `POST /v1/prewarm` for the SKU right after its
 * write, which is what an external feed would have to do without it.
 *
 * Writes bench/results/changes.json with `goals: [{name, measured, goal, met}]`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { encodeRecord } from "../records/encode";
import { priceKey } from "../records/keys";
import { startEdgeNode, type EdgeNode } from "../scripts/edge-node";
import { startRedis } from "../scripts/redis-server";
import { median, percentile, spread } from "./stats";

const SKUS = 20_000;
const TRACKED = 2_000; // the last TRACKED SKUs: each tracked change uses one, once
const CHANGES_PER_SECOND = 1_000;
const TRACKED_PER_SECOND = 20;
const ROUND_SECONDS = 10;
const TOKEN = "bench-changes";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "3" } } });
const rounds = Number(args.rounds);

function priceRecord(sku: string, base: number): Uint8Array {
  return encodeRecord({ sku, currency: "CNY", base, promotions: [], updatedAt: Date.now() });
}

async function prewarm(url: string, skus: readonly string[]): Promise<void> {
  for (let i = 0; i < skus.length; i += 1000) {
    const res = await fetch(`${url}/v1/prewarm`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ skus: skus.slice(i, i + 1000), ttl: 3600 }),
    });
    if (res.status !== 200) throw new Error(`prewarm answered ${res.status}`);
    await res.body?.cancel();
  }
}

async function servedAmount(url: string, sku: string): Promise<number | undefined> {
  const res = await fetch(`${url}/v1/skus/${sku}`);
  const body = (await res.json()) as { price?: { amount: number } };
  return body.price?.amount;
}

/** One round: background changes at CHANGES_PER_SECOND, tracked changes measured; the delays (ms) of the tracked ones (Infinity: not served within 5 s). */
async function round(node: EdgeNode, redis: Redis, skus: readonly string[], tracked: string[], explicitPrewarm: boolean): Promise<number[]> {
  const background = skus.slice(0, SKUS - TRACKED);
  let amount = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  const delays: Promise<number>[] = [];
  const end = performance.now() + ROUND_SECONDS * 1000;
  let tick = 0;
  while (performance.now() < end) {
    const at = performance.now();
    const p = redis.pipeline();
    for (let i = 0; i < CHANGES_PER_SECOND / 100; i++) {
      const sku = background[Math.floor(Math.random() * background.length)]!;
      p.set(priceKey("sku:", sku), Buffer.from(priceRecord(sku, 10_000 + Math.floor(Math.random() * 1000))));
    }
    void p.exec();
    if (tick++ % (100 / TRACKED_PER_SECOND) === 0) {
      const sku = tracked.shift()!;
      const want = ++amount;
      delays.push(
        (async () => {
          await redis.set(priceKey("sku:", sku), Buffer.from(priceRecord(sku, want)));
          const written = performance.now();
          if (explicitPrewarm) await prewarm(node.url, [sku]);
          while (performance.now() - written < 5000) {
            if ((await servedAmount(node.url, sku)) === want) return performance.now() - written;
            await new Promise((r) => setTimeout(r, 10));
          }
          return Infinity;
        })(),
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 10 - (performance.now() - at))));
  }
  return Promise.all(delays);
}

const redis = await startRedis();
const client = new Redis(redis.url);
const catalog = demoCatalog(SKUS, Date.now(), Date.now() + 86_400_000);
await seedCatalog(client, catalog);
const skus = catalog.map((r) => r.sku);
const tracked = skus.slice(SKUS - TRACKED);
const results: Record<"watch" | "explicit", { p50: number; p99: number; max: number; lost: number }[]> = { watch: [], explicit: [] };

for (const mode of ["watch", "explicit"] as const) {
  const node = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: TOKEN, NODE_WATCH_CHANGES: mode === "watch" ? "1" : "0" }, processes: 2 });
  try {
    for (let r = 0; r < rounds; r++) {
      await prewarm(node.url, skus);
      const d = (await round(node, client, skus, tracked, mode === "explicit")).sort((a, b) => a - b);
      const served = d.filter(Number.isFinite);
      const row = { p50: percentile(served, 50), p99: percentile(served, 99), max: Math.max(...served), lost: d.length - served.length };
      results[mode].push(row);
      console.log(`${mode} round ${r + 1}: ${d.length} tracked changes, p50 ${row.p50.toFixed(0)} ms, p99 ${row.p99.toFixed(0)} ms, max ${row.max.toFixed(0)} ms, not served within 5 s: ${row.lost}`);
    }
  } finally {
    await node.stop();
  }
}
client.disconnect();
await redis.stop();

const med = (mode: "watch" | "explicit", k: "p50" | "p99"): number => median(results[mode].map((r) => r[k]));
const lost = results.watch.reduce((s, r) => s + r.lost, 0);
const goals = [
  { name: "a changed record is served within 1 s: p99 over rounds (median)", measured: `${med("watch", "p99").toFixed(0)} ms (rounds ${spread(results.watch.map((r) => r.p99))} ms)`, goal: "≤ 1000 ms", met: med("watch", "p99") <= 1000 },
  { name: "every tracked change served within 5 s", measured: `${lost} not served`, goal: "0", met: lost === 0 },
  {
    name: "the watch against an explicit prewarm after each write: p50 ratio (median)",
    measured: `${(med("watch", "p50") / med("explicit", "p50")).toFixed(2)}× (${med("watch", "p50").toFixed(0)} vs ${med("explicit", "p50").toFixed(0)} ms)`,
    goal: "reported",
    met: true,
  },
];
for (const g of goals) console.log(`${g.met ? "MET   " : "MISSED"} ${g.name}: ${g.measured} (goal ${g.goal})`);
const out = path.join(import.meta.dirname, "results");
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, "changes.json"),
  `${JSON.stringify({ at: new Date().toISOString(), skus: SKUS, changesPerSecond: CHANGES_PER_SECOND, trackedPerSecond: TRACKED_PER_SECOND, roundSeconds: ROUND_SECONDS, results, goals }, null, 2)}\n`,
);

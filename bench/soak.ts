/**
 * `npm run soak`: the node as deployed under steady load for a long time
 * (default 10 minutes; `-- --minutes 2` for a short run), then past its
 * capacity. Loopback only, bounded in time.
 *
 * 1. Saturation: 10 s, closed loop, 16 connections reading random SKUs: the
 *    node's capacity R on this machine.
 * 2. Soak: rounds of 40 s at an open-loop rate of 60 % of R, random SKUs out
 *    of 60,000 (10 % unknown: 404 is their right answer). After each round,
 *    the RSS of every workerd process and the JS heap of process 1 (through
 *    its inspector), the hot caches' bytes and entries from /metrics.
 * 3. Overload: 15 s, closed loop, 1,024 connections, misses included: what the
 *    node answers past its capacity.
 *
 * Writes bench/results/soak.json with the samples, the answers by status and
 * `goals: [{name, measured, goal, met}]`.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode, type EdgeNode } from "../scripts/edge-node";
import { freePort, startRedis } from "../scripts/redis-server";
import { HEAP_OVERHEAD_MIB } from "../edge-node/workerd-config";
import { inspect } from "./cdp";

const SKUS = 60_000;
const UNKNOWN_SHARE = 0.1;
const ROUND_SECONDS = 40;
const MIB = 1024 * 1024;
/** The hot cache's budget per process (the worker's default HOT_CACHE_MAX_BYTES). */
const HOT_BUDGET = 48 * MIB;
/**
 * What a process's RSS may hold beyond its hot cache's budget: the runtime and
 * the bundle (~95 MiB at start), the JS heap's own overhead (HEAP_OVERHEAD_MIB,
 * the V8 limit the node sets), the Wasm instance, socket buffers. Stated up
 * front; the goal checks it.
 */
const FIXED_OVERHEAD = 176 * MIB;

interface Tally {
  /** Known SKUs answered 200, unknown SKUs answered 404. */
  right: number;
  /** Answers by status and error code for the rest, e.g. {"503 overloaded": 3}. */
  wrong: Record<string, number>;
  timeouts: number;
  errors: number;
  reqPerSec: number;
  p99: number;
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function run(url: string, known: readonly string[], o: { seconds: number; connections: number; rate?: number; missShare?: number }): Promise<Tally> {
  const tally: Tally = { right: 0, wrong: {}, timeouts: 0, errors: 0, reqPerSec: 0, p99: 0 };
  let cold = 0;
  const result = await autocannon({
    url,
    connections: o.connections,
    duration: o.seconds,
    ...(o.rate ? { overallRate: o.rate } : {}),
    timeout: 10,
    requests: [
      {
        setupRequest: (req, context) => {
          const c = context as { unknown?: boolean };
          c.unknown = Math.random() < UNKNOWN_SHARE;
          // misses (overload phase): SKUs the node has never seen, computed read-through
          const miss = !c.unknown && Math.random() < (o.missShare ?? 0);
          const sku = c.unknown ? `unknown-${Math.floor(Math.random() * 1e9)}` : miss ? known[cold++ % known.length]! : known[Math.floor(Math.random() * known.length)]!;
          return { ...req, path: `/v1/skus/${sku}` };
        },
        onResponse: (status, body, context) => {
          const c = context as { unknown?: boolean };
          if ((c.unknown && status === 404) || (!c.unknown && status === 200)) return void tally.right++;
          let code = "";
          try {
            code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? "";
          } catch {
            // not JSON
          }
          const k = `${status} ${code}`.trim();
          tally.wrong[k] = (tally.wrong[k] ?? 0) + 1;
        },
      },
    ],
  });
  tally.timeouts = result.timeouts;
  tally.errors = result.errors - result.timeouts;
  tally.reqPerSec = result.requests.average;
  tally.p99 = result.latency.p99;
  return tally;
}

async function nodeGauge(node: EdgeNode, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" } } });
  const minutes = Number(values.minutes);
  if (!(minutes > 0 && minutes <= 120)) throw new RangeError(`--minutes must be in (0, 120], got ${values.minutes}`);
  const rounds = Math.max(1, Math.round((minutes * 60) / ROUND_SECONDS));
  const redis = await startRedis();
  const token = randomBytes(8).toString("hex");
  const inspectorPort = await freePort();
  let node: EdgeNode | undefined;
  try {
    const catalog = demoCatalog(SKUS, Date.now(), Date.now() + 24 * 3_600_000);
    const c = new Redis(redis.url);
    await seedCatalog(c, catalog);
    c.disconnect();
    const known = catalog.map((r) => r.sku);
    node = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: token, CACHE_TTL_SECONDS: "300" }, processes: 2, inspectorPort });
    const cdp = await inspect(inspectorPort);
    const heap = async (): Promise<{ used: number; total: number }> => {
      const h = (await cdp.send("Runtime.getHeapUsage")) as { usedSize: number; totalSize: number };
      return { used: h.usedSize, total: h.totalSize };
    };
    const pids = (): number[] => [...node!.processes().values()].map((p) => p.pid);
    const startRss = pids().map(rssOf);
    console.log(`node up: ${pids().length} processes, RSS ${startRss.map((b) => (b / MIB).toFixed(0)).join(" / ")} MiB`);

    const saturation = await run(node.url, known, { seconds: 10, connections: 16 });
    const rate = Math.round(saturation.reqPerSec * 0.6);
    console.log(`saturation: ${Math.round(saturation.reqPerSec)} req/s (p99 ${saturation.p99} ms); soak at ${rate} req/s, ${rounds} rounds of ${ROUND_SECONDS} s`);

    const samples: { at: number; round: number; rssMiB: number[]; heapUsedMiB: number; heapTotalMiB: number; hotCacheMiB: number; hotEntries: number; tally: Tally }[] = [];
    const t0 = Date.now();
    for (let round = 1; round <= rounds; round++) {
      const tally = await run(node.url, known, { seconds: ROUND_SECONDS, connections: 32, rate });
      const h = await heap();
      const sample = {
        at: Math.round((Date.now() - t0) / 1000),
        round,
        rssMiB: pids().map((p) => +(rssOf(p) / MIB).toFixed(1)),
        heapUsedMiB: +(h.used / MIB).toFixed(1),
        heapTotalMiB: +(h.total / MIB).toFixed(1),
        hotCacheMiB: +((await nodeGauge(node, "edge_hot_cache_bytes")) / MIB).toFixed(1),
        hotEntries: await nodeGauge(node, "edge_hot_cache_entries"),
        tally,
      };
      samples.push(sample);
      const bad = Object.entries(tally.wrong).map(([s, n]) => `${s}: ${n}`).join(", ") || "none";
      console.log(
        `round ${round}/${rounds}: ${Math.round(tally.reqPerSec)} req/s, p99 ${tally.p99} ms, wrong ${bad}, timeouts ${tally.timeouts}; ` +
          `RSS ${sample.rssMiB.join(" / ")} MiB, heap ${sample.heapUsedMiB}/${sample.heapTotalMiB} MiB, hot ${sample.hotCacheMiB} MiB (${sample.hotEntries} entries)`,
      );
    }

    const overload = await run(node.url, known, { seconds: 15, connections: 1024, missShare: 0.5 });
    const overloadStatuses = Object.entries(overload.wrong).map(([s, n]) => `${s}: ${n}`).join(", ") || "none";
    console.log(`overload (1,024 connections): ${Math.round(overload.reqPerSec)} req/s, p99 ${overload.p99} ms, other answers ${overloadStatuses}, timeouts ${overload.timeouts}, errors ${overload.errors}`);
    const shed = await nodeGauge(node, "edge_requests_shed_total");
    cdp.close();

    const maxRss = Math.max(...samples.flatMap((s) => s.rssMiB));
    const maxHeap = Math.max(...samples.map((s) => s.heapUsedMiB));
    const heapLimit = HOT_BUDGET / MIB + HEAP_OVERHEAD_MIB;
    const soakWrong = samples.reduce((n, s) => n + Object.values(s.tally.wrong).reduce((a, b) => a + b, 0) + s.tally.timeouts + s.tally.errors, 0);
    const soakTotal = samples.reduce((n, s) => n + s.tally.right, 0) + soakWrong;
    const overloadShed = overload.wrong["503 overloaded"] ?? 0;
    const overloadOther = Object.entries(overload.wrong).filter(([s]) => s !== "503 overloaded").reduce((n, [, v]) => n + v, 0);
    const limit = (HOT_BUDGET + FIXED_OVERHEAD) / MIB;
    const goals = [
      { name: `RSS of every process ≤ hot cache budget (48 MiB) + fixed overhead (${FIXED_OVERHEAD / MIB} MiB)`, measured: `max ${maxRss} MiB`, goal: `≤ ${limit} MiB`, met: maxRss <= limit },
      { name: `JS heap used by process 1 ≤ hot cache budget + ${HEAP_OVERHEAD_MIB} MiB (V8's limit on the node)`, measured: `max ${maxHeap} MiB`, goal: `≤ ${heapLimit} MiB`, met: maxHeap <= heapLimit },
      { name: `no wrong answer below saturation (60 % of ${Math.round(saturation.reqPerSec)} req/s)`, measured: `${soakWrong} of ${soakTotal}`, goal: "0", met: soakWrong === 0 },
      {
        name: "past saturation: shed at the door (503 overloaded), no timeouts, no other errors",
        measured: `${overloadShed} x 503 overloaded (${shed} shed in all), ${overloadOther} other errors (${overloadStatuses}), ${overload.timeouts} timeouts, ${overload.errors} connection errors`,
        goal: "0 other, 0 timeouts, 0 errors",
        met: overloadOther === 0 && overload.timeouts === 0 && overload.errors === 0,
      },
    ];
    for (const g of goals) console.log(`${g.met ? "MET   " : "MISSED"} ${g.name}: ${g.measured} (goal ${g.goal})`);
    const dir = path.resolve(import.meta.dirname, "results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, "soak.json"),
      `${JSON.stringify({ at: new Date().toISOString(), minutes, skus: SKUS, unknownShare: UNKNOWN_SHARE, startRssMiB: startRss.map((b) => +(b / MIB).toFixed(1)), saturation, rate, samples, overload, goals }, null, 2)}\n`,
    );
    console.log("results written to bench/results/soak.json");
  } finally {
    await node?.stop();
    await redis.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

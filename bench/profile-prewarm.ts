/**
 * `npm run bench:profile`: a CPU profile of the edge worker (one workerd
 * process of a node) while it warms 1,000-SKU batches back to back (the same
 * load as the prewarm benchmark) or, with `--what reads`, answers warmed
 * reads from 10 connections for 5 s (`--what misses`: reads of keys never
 * read before), taken through the worker's DevTools
 * inspector (Chrome DevTools Protocol). Prints the functions with the most
 * self time and writes bench/results/<what>.cpuprofile (open it in Chrome
 * DevTools).
 *
 *   npm run bench:profile -- [--what prewarm|reads|misses] [--rounds 20]
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode } from "../scripts/edge-node";
import { freePort, startRedis } from "../scripts/redis-server";
import { inspect } from "./cdp";
import { prewarmRate } from "./prewarm";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by function (ms), most first. */
function selfTimes(p: Profile): [string, number][] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  return [...self].sort((a, b) => b[1] - a[1]);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: "string", default: "20" }, what: { type: "string", default: "prewarm" } } });
  const what = values.what;
  if (what !== "prewarm" && what !== "reads" && what !== "misses") throw new RangeError(`--what must be prewarm, reads or misses, got ${what}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer, got ${values.rounds}`);
  const token = randomBytes(8).toString("hex");
  const redis = await startRedis();
  const catalog = demoCatalog(20_000, Date.now(), Date.now() + 3_600_000);
  const c = new Redis(redis.url);
  await seedCatalog(c, catalog);
  c.disconnect();
  const inspectorPort = await freePort();
  const edge = await startEdgeNode({
    vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: token },
    // One process, so that every batch lands in the profiled one.
    processes: 1,
    inspectorPort,
  });
  try {
    const skus = catalog.map((r) => r.sku);
    await prewarmRate(edge, token, skus, 3); // warm-up: JIT tiers, Wasm instance
    const cdp = await inspect(inspectorPort);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
    await cdp.send("Profiler.start");
    let summary: string;
    if (what === "prewarm") {
      const rate = await prewarmRate(edge, token, skus, rounds);
      summary = `${Math.round(rate.skusPerSecond)} SKUs/s over ${rounds} batches`;
    } else if (what === "reads") {
      const r = await autocannon({ url: `${edge.url}/v1/skus/${skus[3]}`, connections: 10, duration: 5 });
      summary = `${Math.round(r.requests.average)} warmed reads/s, p99 ${r.latency.p99} ms, ${r.non2xx} non-2xx`;
    } else {
      // keys never read before: each a miss computed read-through
      let next = 5000;
      const r = await autocannon({
        url: edge.url,
        connections: 10,
        duration: 5,
        requests: [{ setupRequest: (req) => ({ ...req, path: `/v1/skus/${skus[next++ % skus.length]}` }) }],
      });
      summary = `${Math.round(r.requests.average)} misses/s, p99 ${r.latency.p99} ms, ${r.non2xx} non-2xx`;
    }
    const { profile } = (await cdp.send("Profiler.stop")) as { profile: Profile };
    cdp.close();
    const dir = path.resolve(import.meta.dirname, "results");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${what}.cpuprofile`), JSON.stringify(profile));
    const total = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
    console.log(`${summary}; profile ${total.toFixed(0)} ms, top self time:`);
    for (const [name, ms] of selfTimes(profile).slice(0, 30)) console.log(`${ms.toFixed(1).padStart(8)} ms ${((ms / total) * 100).toFixed(1).padStart(5)} %  ${name}`);
  } finally {
    await edge.stop();
    await redis.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

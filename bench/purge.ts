/**
 * `npm run bench:purge`: purge by tag and soft purge (SPEC §9) on the node
 * as deployed (2 workerd processes on one socket, aggregates in its edge
 * Redis), each goal against a baseline measured in the same run.
 *
 *  1. A purge by tag of 10,000 and of 100,000 warmed keys: from the moment
 *     the purge request is sent, each process's own probe port is polled for
 *     a sample of the purged keys (each first made hot in that process's
 *     memory) until neither serves the old aggregate as HIT (same ETag);
 *     p50/p99 over the sample, and the purge's own answer time.
 *  2. Reads/s of warmed HITs of other keys (not carrying the purged tag)
 *     while a 100,000-key purge runs (its send to its answer), against the
 *     same load session's reads/s with no purge (2 s before it, 2 s after).
 *  3. The bytes of tag index per cached key: the tags each aggregate carries
 *     in its own value's head line (there is no separate index), and the
 *     edge Redis's `used_memory` per cached aggregate before/after warming.
 *  4. A soft purge of 1,000 hot keys under read load: recomputations per key
 *     (`edge_aggregate_computations_total{trigger="read"}` delta / keys) and
 *     record reads per key (`edge_redis_record_reads_total` delta / keys).
 *
 * Loopback only; about 2 to 4 minutes. Writes bench/results/purge.json
 * with `goals: [{what, value, baseline, goal, met}]`.
 */
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import { demoCatalog, seedCatalog } from "../records/demo-catalog";
import { startEdgeNode, type EdgeNode } from "../scripts/edge-node";
import { startRedis } from "../scripts/redis-server";
import { median, percentile, spread } from "./stats";

const PROCESSES = 2;
const BIG = 100_000;
const SMALL = 10_000;
/** Warmed keys without the purged labels: what the reads of goal 2 ask for. */
const OTHER = 1_000;
/** The hot keys of the soft purge (goal 4). */
const SOFT = 1_000;
/** Purged keys polled on every process per purge (goal 1). */
const SAMPLE = 100;
/** Poll requests in flight per process (each lane polls SAMPLE / POLL_LANES keys in turn). */
const POLL_LANES = 20;
const BATCH = 1_000;
const TTL_SECONDS = 3_600;
const TAG_BIG = "label:bench-100k";
const TAG_SMALL = "label:bench-10k";
const TAG_SOFT = "label:bench-soft";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "3" } } });
const rounds = Number(args.rounds);
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new RangeError(`--rounds must be an integer in 1..10, got ${args.rounds}`);

const token = randomBytes(8).toString("hex");
const auth = { "Content-Type": "application/json", Authorization: `Bearer ${token}` };

function cpuName(): string {
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync("lscpu", { encoding: "utf8" }));
    if (m) return m[1]!.trim();
  } catch {
    // lscpu missing: os.cpus() below
  }
  return cpus()[0]?.model ?? "unknown";
}

/** Prewarms `skus` through the node in 1,000-SKU batches, PROCESSES in flight, with `tags`; SKUs/s. Throws on any failed SKU. */
async function warm(node: EdgeNode, skus: readonly string[], tags: readonly string[]): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    for (let off = (next += BATCH) - BATCH; off < skus.length; off = (next += BATCH) - BATCH) {
      const res = await fetch(`${node.url}/v1/prewarm`, { method: "POST", headers: auth, body: JSON.stringify({ skus: skus.slice(off, off + BATCH), ttl: TTL_SECONDS, tags }) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`prewarm answered ${res.status}: ${text.slice(0, 300)}`);
      const a = JSON.parse(text) as { failed: unknown[] };
      if (a.failed.length > 0) throw new Error(`prewarm failed for ${a.failed.length} SKUs: ${JSON.stringify(a.failed.slice(0, 3))}`);
    }
  };
  await Promise.all(Array.from({ length: PROCESSES }, lane));
  return (skus.length / (performance.now() - t0)) * 1000;
}

interface Probe {
  status: number;
  cache: string | null;
  etag: string | null;
}

async function probe(url: string, sku: string): Promise<Probe> {
  const res = await fetch(`${url}/v1/skus/${sku}`);
  await res.body?.cancel();
  return { status: res.status, cache: res.headers.get("X-Cache"), etag: res.headers.get("ETag") };
}

/** The node's processes' own URLs (probe ports): what each process alone serves. */
function processUrls(node: EdgeNode): string[] {
  const urls = [...node.processes().values()].map((p) => p.url);
  if (urls.length !== PROCESSES) throw new Error(`expected ${PROCESSES} processes, the node reports ${urls.length}`);
  return urls;
}

/** Reads each key on each process until it is a HIT there (in that process's memory); the ETag each process serves, by process then key. */
async function makeHot(urls: readonly string[], skus: readonly string[]): Promise<Map<string, string>[]> {
  return Promise.all(
    urls.map(async (url) => {
      const etags = new Map<string, string>();
      for (const sku of skus) {
        let p = await probe(url, sku);
        p = await probe(url, sku); // the first read may have loaded it from the store
        if (p.status !== 200 || p.cache !== "HIT" || !p.etag) throw new Error(`${sku} on ${url}: expected a warmed HIT, got ${p.status} ${p.cache}`);
        etags.set(sku, p.etag);
      }
      return etags;
    }),
  );
}

/**
 * Sends the purge and polls every process for the sample (each lane its own
 * keys) until none serves its old aggregate (same ETag) as HIT. Per key, on
 * the last process to stop, from the purge's send: `stopMs`, the receive
 * time of the first answer that was not the old HIT (an upper bound), and
 * `lastOldMs`, the send time of the last answer that still was (a lower
 * bound; 0 when none was). Infinity for a key still served after 10 s. Then,
 * 1 s after the purge answered, every sampled key is read once more on
 * every process: `oldAfter` counts old HITs then (a purge that did not stick).
 */
async function purgeAndPoll(node: EdgeNode, body: Record<string, unknown>, sample: readonly string[]): Promise<{ answerMs: number; purged: number; stopMs: number[]; lastOldMs: number[]; oldAfter: number }> {
  const urls = processUrls(node);
  const old = await makeHot(urls, sample);
  const t0 = performance.now();
  const purge = (async () => {
    const res = await fetch(`${node.url}/v1/purge`, { method: "POST", headers: auth, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`purge answered ${res.status}: ${text}`);
    return { answerMs: performance.now() - t0, purged: (JSON.parse(text) as { purged: number }).purged };
  })();
  const stop = new Map<string, number>(sample.map((s) => [s, 0]));
  const lastOld = new Map<string, number>(sample.map((s) => [s, 0]));
  const isOld = (p: Probe, i: number, sku: string): boolean => p.status === 200 && p.cache === "HIT" && p.etag === old[i]!.get(sku);
  await Promise.all(
    urls.flatMap((url, i) =>
      Array.from({ length: POLL_LANES }, async (_, lane) => {
        const pending = new Set(sample.filter((_, k) => k % POLL_LANES === lane));
        while (pending.size > 0 && performance.now() - t0 < 10_000) {
          for (const sku of [...pending]) {
            const sent = performance.now() - t0;
            const p = await probe(url, sku);
            if (isOld(p, i, sku)) {
              lastOld.set(sku, Math.max(lastOld.get(sku)!, sent));
              continue;
            }
            pending.delete(sku);
            stop.set(sku, Math.max(stop.get(sku)!, performance.now() - t0));
          }
        }
        for (const sku of pending) stop.set(sku, Infinity);
      }),
    ),
  );
  const answer = await purge;
  await sleep(Math.max(0, answer.answerMs + 1000 - (performance.now() - t0)));
  let oldAfter = 0;
  for (const [i, url] of urls.entries()) for (const sku of sample) if (isOld(await probe(url, sku), i, sku)) oldAfter++;
  const sorted = (m: Map<string, number>): number[] => [...m.values()].sort((a, b) => a - b);
  return { ...answer, stopMs: sorted(stop), lastOldMs: sorted(lastOld), oldAfter };
}

/** Read load on `paths` (10 connections) until stopped; the receive time of every 2xx answer, and the failures. */
function readLoad(node: EdgeNode, paths: readonly string[]): { stop(): Promise<{ at: number[]; failures: number }> } {
  const at: number[] = [];
  let failures = 0;
  let done!: (v: { at: number[]; failures: number }) => void;
  const finished = new Promise<{ at: number[]; failures: number }>((r) => (done = r));
  const inst = autocannon({ url: node.url, connections: 10, duration: 120, requests: paths.map((p) => ({ method: "GET", path: p })) }, (err, result) => {
    if (err) failures++;
    failures += result ? result.errors + result.timeouts : 0;
    done({ at, failures });
  });
  inst.on("response", (_client: unknown, status: number) => {
    if (status >= 200 && status < 300) at.push(performance.now());
    else failures++;
  });
  return {
    stop: async () => {
      inst.stop();
      return finished;
    },
  };
}

/**
 * Read load that reads every key of `skus` on every process in turn
 * (LANES lanes per process, each its own keys), until stopped: each answer's
 * time, latency and X-Cache. `passes(n)` resolves once every lane has read
 * all its keys n more times.
 */
function readEveryKey(urls: readonly string[], skus: readonly string[], lanes = 5): { passes(n: number): Promise<void>; stop(): Promise<{ reads: { at: number; ms: number; result: string }[]; failures: number }> } {
  const reads: { at: number; ms: number; result: string }[] = [];
  let failures = 0;
  let stopped = false;
  const done: number[] = [];
  const running = urls.flatMap((url) =>
    Array.from({ length: lanes }, async (_, lane) => {
      const slot = done.push(0) - 1;
      const mine = skus.filter((_, k) => k % lanes === lane);
      while (!stopped) {
        for (const sku of mine) {
          if (stopped) return;
          const sent = performance.now();
          const p = await probe(url, sku).catch(() => null);
          const at = performance.now();
          if (!p || p.status !== 200) failures++;
          else reads.push({ at, ms: at - sent, result: p.cache ?? "none" });
        }
        done[slot]!++;
      }
    }),
  );
  return {
    passes: async (n) => {
      const target = done.map((d) => d + n);
      const deadline = performance.now() + 20_000;
      while (done.some((d, i) => d < target[i]!) && performance.now() < deadline) await sleep(20);
    },
    stop: async () => {
      stopped = true;
      await Promise.all(running);
      return { reads, failures };
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const countIn = (at: readonly number[], from: number, to: number): number => at.reduce((n, t) => n + (t >= from && t < to ? 1 : 0), 0);

/** A counter of the node (its processes' counts flushed first: each process flushes its own when asked). */
async function nodeCounters(node: EdgeNode): Promise<{ readComputations: number; recordReads: number; memoryHits: number; storeHits: number }> {
  let text = "";
  for (const url of processUrls(node)) text = await (await fetch(`${url}/metrics`)).text();
  const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  return {
    readComputations: value(/^edge_aggregate_computations_total\{trigger="read"\} (\S+)$/m),
    recordReads: value(/^edge_redis_record_reads_total (\S+)$/m),
    memoryHits: value(/^edge_cache_layer_hits_total\{layer="memory"\} (\S+)$/m),
    storeHits: value(/^edge_cache_layer_hits_total\{layer="store"\} (\S+)$/m),
  };
}

/** Redis's CPU seconds so far (user + sys). */
async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const v = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  return v("used_cpu_user") + v("used_cpu_sys");
}

async function usedMemory(redis: Redis): Promise<number> {
  await redis.call("MEMORY", "PURGE").catch(() => undefined);
  return Number(/^used_memory:(\d+)/m.exec(await redis.info("memory"))?.[1] ?? NaN);
}

/** A sample of stored aggregates: mean bytes of their head line (basis, tags, rules), of its tags field, and Redis's MEMORY USAGE of the key. */
async function headLines(redis: Redis, n: number): Promise<{ head: number; tags: number; memoryUsage: number; example: string; keys: number }> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", "*:agg:*", "COUNT", 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== "0" && keys.length < n);
  let head = 0;
  let tags = 0;
  let usage = 0;
  let example = "";
  for (const k of keys.slice(0, n)) {
    const v = await redis.getrangeBuffer(k, 0, 8191);
    const line = v.subarray(0, v.indexOf(10)).toString("latin1");
    head += line.length + 1;
    tags += line.split("\t")[1]!.length;
    usage += Number(await redis.call("MEMORY", "USAGE", k, "SAMPLES", "0"));
    example ||= line;
  }
  const m = Math.min(n, keys.length);
  return { head: head / m, tags: tags / m, memoryUsage: usage / m, example, keys: m };
}

interface Row {
  what: string;
  value: string;
  baseline: string;
  goal: string;
  met: boolean | null;
}
const rows: Row[] = [];
function row(r: Row): void {
  rows.push(r);
  console.log(`${r.met === null ? "      " : r.met ? "MET   " : "MISSED"} ${r.what}: ${r.value} | baseline ${r.baseline} | goal ${r.goal}`);
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const cpu = cpuName();
  console.log(`       CPU: ${cpu}; ${rounds} rounds`);
  const redis = await startRedis();
  const client = new Redis(redis.url);
  let node: EdgeNode | undefined;
  const results: Record<string, unknown> = { at: new Date().toISOString(), cpu, processes: PROCESSES, rounds };
  try {
    const now = Date.now();
    const catalog = demoCatalog(BIG + SMALL + OTHER + SOFT, now, now + 86_400_000);
    await seedCatalog(client, catalog);
    const skus = catalog.map((r) => r.sku);
    const big = skus.slice(0, BIG);
    const small = skus.slice(BIG, BIG + SMALL);
    const other = skus.slice(BIG + SMALL, BIG + SMALL + OTHER);
    const soft = skus.slice(BIG + SMALL + OTHER);
    node = await startEdgeNode({ vars: { EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: token }, processes: PROCESSES });
    console.log(`       seeded ${skus.length} SKUs; node up (${PROCESSES} processes)`);

    // 3. Memory: the edge Redis before and after warming every set (records already there).
    await sleep(500);
    const memBefore = await usedMemory(client);
    const rates = [await warm(node, big, [TAG_BIG]), await warm(node, small, [TAG_SMALL]), await warm(node, other, []), await warm(node, soft, [TAG_SOFT])];
    console.log(`       warmed ${skus.length} SKUs (${spread(rates)} SKUs/s per set)`);
    const memAfter = await usedMemory(client);
    const heads = await headLines(client, 1000);
    const fenceKeys = (await client.keys("*_tag:*")).length;
    const perKey = (memAfter - memBefore) / skus.length;
    results["memory"] = { usedMemoryBefore: memBefore, usedMemoryAfter: memAfter, cachedKeys: skus.length, usedMemoryPerKey: perKey, headLine: heads, fenceKeysBeforeAnyPurge: fenceKeys };
    row({
      what: "tag index per cached key: the tags each aggregate carries in its own value's head line (no separate index; fences exist only per purged tag)",
      value: `${heads.tags.toFixed(1)} B of tags (head line ${heads.head.toFixed(1)} B incl. basis and rules; mean of ${heads.keys} keys; e.g. "${heads.example.replace(/\t/g, "⇥")}"); ${fenceKeys} fence keys before any purge`,
      baseline: `the whole aggregate in the edge Redis: ${Math.round(perKey)} B per key (used_memory ${(memBefore / 2 ** 20).toFixed(1)} → ${(memAfter / 2 ** 20).toFixed(1)} MiB for ${skus.length} keys; MEMORY USAGE ${Math.round(heads.memoryUsage)} B)`,
      goal: "≤ 64 B",
      met: heads.tags <= 64,
    });

    // 1. Purge by tag, 10,000 and 100,000 keys: until every process stops serving them.
    type Poll = { answerMs: number; purged: number; p50: number; p99: number; max: number; lastOldP99: number; lastOldMax: number; oldAfter: number };
    const polls: Record<string, Poll[]> = { "10k": [], "100k": [] };
    for (let r = 0; r < rounds; r++) {
      for (const [name, set, tag] of [["10k", small, TAG_SMALL], ["100k", big, TAG_BIG]] as const) {
        if (r > 0) await warm(node, set, [tag]);
        const sample = Array.from({ length: SAMPLE }, (_, i) => set[Math.floor((i * set.length) / SAMPLE)]!);
        const p = await purgeAndPoll(node, { tags: [tag] }, sample);
        const res: Poll = { answerMs: p.answerMs, purged: p.purged, p50: percentile(p.stopMs, 50), p99: percentile(p.stopMs, 99), max: p.stopMs[p.stopMs.length - 1]!, lastOldP99: percentile(p.lastOldMs, 99), lastOldMax: p.lastOldMs[p.lastOldMs.length - 1]!, oldAfter: p.oldAfter };
        polls[name]!.push(res);
        console.log(`       purge ${name} round ${r + 1}: purged ${res.purged}, answered in ${res.answerMs.toFixed(0)} ms; every process stopped serving: p50 ${res.p50.toFixed(0)} ms, p99 ${res.p99.toFixed(0)} ms, max ${res.max.toFixed(0)} ms (last old HIT sent at ${res.lastOldMax.toFixed(0)} ms); old HITs 1 s after the answer: ${res.oldAfter}`);
      }
    }
    results["purgeByTag"] = polls;
    for (const [name, n] of [["10k", SMALL], ["100k", BIG]] as const) {
      const rs = polls[name]!;
      const p99 = median(rs.map((x) => x.p99));
      // A sampled key the poll recomputed before the purge's scan reached it is not counted (its entry is already new).
      const counted = rs.every((x) => x.purged >= n - SAMPLE && x.purged <= n);
      const oldAfter = rs.reduce((k, x) => k + x.oldAfter, 0);
      row({
        what: `purge by tag of ${n.toLocaleString("en")} keys, ${PROCESSES} processes: from the purge's send until no process serves a sampled key (${SAMPLE}, hot in each process) as its old HIT (receive time of the first other answer); median of ${rounds}`,
        value: `p50 ${median(rs.map((x) => x.p50)).toFixed(0)} ms (${spread(rs.map((x) => x.p50))}), p99 ${p99.toFixed(0)} ms (${spread(rs.map((x) => x.p99))}); last old HIT sent at ≤ ${Math.max(...rs.map((x) => x.lastOldMax)).toFixed(0)} ms; purge answered in ${median(rs.map((x) => x.answerMs)).toFixed(0)} ms (${spread(rs.map((x) => x.answerMs))}), purged ${rs.map((x) => x.purged).join(", ")}; old HITs 1 s after the answer: ${oldAfter}`,
        baseline: "-",
        goal: `p99 ≤ 1000 ms from the send; none served after; purged ${n - SAMPLE}..${n}`,
        met: p99 <= 1000 && counted && oldAfter === 0,
      });
    }

    // 2. Reads/s of other warmed keys during a 100,000-key purge, against no purge, alternated.
    const otherPaths = other.map((s) => `/v1/skus/${s}`);
    for (const p of (await Promise.all(processUrls(node).map((u) => probe(u, other[0]!))))) if (p.cache !== "HIT") throw new Error(`the read load's keys are not warm: ${p.cache}`);
    const during: { rps: number; windowMs: number; failures: number; purged: number; redisCpuShare: number; memoryHits: number; storeHits: number }[] = [];
    const without: { rps: number; windowMs: number; failures: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      await warm(node, big, [TAG_BIG]);
      await sleep(1000); // let the processes' change-log reads catch up with the rewarm
      const load = readLoad(node, otherPaths);
      await sleep(1000);
      const b0 = performance.now();
      await sleep(2000);
      const c0 = await nodeCounters(node);
      const cpu0 = await redisCpu(client);
      const t0 = performance.now();
      const res = await fetch(`${node.url}/v1/purge`, { method: "POST", headers: auth, body: JSON.stringify({ tags: [TAG_BIG] }) });
      const answer = (await res.json()) as { purged: number };
      const t1 = performance.now();
      const cpu1 = await redisCpu(client);
      const c1 = await nodeCounters(node);
      await sleep(2500); // the same reads after the purge: the second half of the baseline
      const t2 = performance.now();
      const got = await load.stop();
      const windowMs = t1 - t0;
      during.push({ rps: (countIn(got.at, t0, t1) / windowMs) * 1000, windowMs, failures: got.failures, purged: answer.purged, redisCpuShare: (cpu1 - cpu0) / (windowMs / 1000), memoryHits: c1.memoryHits - c0.memoryHits, storeHits: c1.storeHits - c0.storeHits });
      // Baseline: the same load session's 2 s before the purge and its 2 s from 0.5 s after the answer.
      const before = countIn(got.at, b0, t0 - 100);
      const afterFrom = t1 + 500;
      without.push({ rps: ((before + countIn(got.at, afterFrom, t2)) / (t0 - 100 - b0 + (t2 - afterFrom))) * 1000, windowMs: t0 - 100 - b0 + (t2 - afterFrom), failures: 0 });
      const d = during[r]!;
      console.log(`       reads round ${r + 1}: ${Math.round(d.rps)} req/s during the purge (${windowMs.toFixed(0)} ms, purged ${answer.purged}; Redis busy ${(d.redisCpuShare * 100).toFixed(0)} % of a core; reads answered from memory ${d.memoryHits}, from the store ${d.storeHits}), ${Math.round(without[r]!.rps)} req/s without`);
    }
    results["readsDuringPurge"] = { during, without };
    const rpsDuring = median(during.map((x) => x.rps));
    const rpsWithout = median(without.map((x) => x.rps));
    const failures = [...during, ...without].reduce((n, x) => n + x.failures, 0);
    // Each round's ratio: its purge window against its own session's baseline (the machine's load moves both alike).
    const ratios = during.map((x, i) => x.rps / without[i]!.rps);
    const ratio = median(ratios);
    row({
      what: `warmed reads (HIT) of ${OTHER.toLocaleString("en")} other keys, 10 connections, while a 100,000-key purge by tag runs (from its send to its answer); median of ${rounds} rounds`,
      value: `${Math.round(rpsDuring)} req/s (${spread(during.map((x) => x.rps))}), ${failures} failed; purge ${median(during.map((x) => x.windowMs)).toFixed(0)} ms, Redis busy ${(median(during.map((x) => x.redisCpuShare)) * 100).toFixed(0)} % of a core meanwhile, reads from the store instead of memory ${(median(during.map((x) => x.storeHits / Math.max(1, x.storeHits + x.memoryHits))) * 100).toFixed(0)} %`,
      baseline: `the same reads in the same load session, 2 s before the purge and 2 s after it (from 0.5 s after its answer): ${Math.round(rpsWithout)} req/s (${spread(without.map((x) => x.rps))})`,
      goal: "≥ 0.8x",
      met: ratio >= 0.8 && failures === 0,
    });
    rows[rows.length - 1]!.value += ` = ${ratio.toFixed(2)}x, median of the rounds' ratios (${ratios.map((x) => x.toFixed(2)).join(", ")})`;

    // 4. A soft purge of 1,000 hot keys under read load: recomputations and record reads per key.
    type SoftRound = { computationsPerKey: number; recordReadsPerKey: number; purged: number; answerMs: number; oldHits: number; failures: number; after: Record<string, number>; p99Before: number; p99After: number; maxAfter: number };
    const softRounds: SoftRound[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r > 0) await warm(node, soft, [TAG_SOFT]);
      const urls = processUrls(node);
      const sample = soft.slice(0, 50);
      const old = await makeHot(urls, sample);
      const load = readEveryKey(urls, soft);
      await load.passes(1); // every key hot in every process
      const before = await nodeCounters(node);
      const t0 = performance.now();
      const res = await fetch(`${node.url}/v1/purge`, { method: "POST", headers: auth, body: JSON.stringify({ tags: [TAG_SOFT], soft: true }) });
      const answer = (await res.json()) as { purged: number };
      const t1 = performance.now();
      await load.passes(2); // every key read at least twice more on every process after the answer
      const got = await load.stop();
      const after = await nodeCounters(node);
      let oldHits = 0;
      for (const [i, url] of urls.entries()) for (const sku of sample) {
        const p = await probe(url, sku);
        if (p.cache === "HIT" && p.etag === old[i]!.get(sku)) oldHits++;
      }
      const lat = (from: number, to: number): number[] => got.reads.filter((x) => x.at >= from && x.at < to).map((x) => x.ms).sort((a, b) => a - b);
      const afterReads = got.reads.filter((x) => x.at >= t0);
      const byResult: Record<string, number> = {};
      for (const x of afterReads) byResult[x.result] = (byResult[x.result] ?? 0) + 1;
      const sr: SoftRound = {
        computationsPerKey: (after.readComputations - before.readComputations) / SOFT,
        recordReadsPerKey: (after.recordReads - before.recordReads) / SOFT,
        purged: answer.purged,
        answerMs: t1 - t0,
        oldHits,
        failures: got.failures,
        after: byResult,
        p99Before: percentile(lat(0, t0), 99),
        p99After: percentile(lat(t0, Infinity), 99),
        maxAfter: Math.max(...lat(t0, Infinity)),
      };
      softRounds.push(sr);
      console.log(`       soft purge round ${r + 1}: purged ${sr.purged} in ${sr.answerMs.toFixed(0)} ms; per key ${sr.computationsPerKey.toFixed(3)} read computations, ${sr.recordReadsPerKey.toFixed(3)} record reads; reads after it ${JSON.stringify(byResult)}, p99 ${sr.p99After.toFixed(0)} ms (before ${sr.p99Before.toFixed(0)} ms), max ${sr.maxAfter.toFixed(0)} ms; old HITs afterwards ${oldHits}; ${sr.failures} failed reads`);
    }
    results["softPurge"] = softRounds;
    const comp = median(softRounds.map((x) => x.computationsPerKey));
    const reads = median(softRounds.map((x) => x.recordReadsPerKey));
    const softOk = softRounds.every((x) => x.oldHits === 0 && x.failures === 0);
    row({
      what: `soft purge of ${SOFT.toLocaleString("en")} hot keys under read load (5 readers per process, each key read in turn on every process until each was read twice more after the answer): read recomputations per key; median of ${rounds}`,
      value: `${comp.toFixed(3)} (${spread(softRounds.map((x) => x.computationsPerKey), (x) => x.toFixed(3))}) with ${PROCESSES} processes; reads after the purge ${softRounds.map((x) => JSON.stringify(x.after)).join(", ")}; read p99 ${median(softRounds.map((x) => x.p99After)).toFixed(0)} ms after vs ${median(softRounds.map((x) => x.p99Before)).toFixed(0)} ms before, max ${Math.max(...softRounds.map((x) => x.maxAfter)).toFixed(0)} ms`,
      baseline: "-",
      goal: `1 per key (one for the node: the first read claims it); no old HIT afterwards, no failed read`,
      met: comp <= 1 && softOk,
    });
    row({
      what: "the same soft purge: record reads from the edge Redis per key (misses to the records)",
      value: `${reads.toFixed(3)} (${spread(softRounds.map((x) => x.recordReadsPerKey), (x) => x.toFixed(3))})`,
      baseline: "-",
      goal: "≤ 1 per key",
      met: reads <= 1 && softOk,
    });
  } finally {
    await node?.stop();
    client.disconnect();
    await redis.stop();
  }
  results["seconds"] = Math.round((performance.now() - startedAt) / 1000);
  const dir = path.join(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "purge.json"), `${JSON.stringify({ ...results, goals: rows }, null, 2)}\n`);
  console.log(`results written to bench/results/purge.json (${results["seconds"]} s)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

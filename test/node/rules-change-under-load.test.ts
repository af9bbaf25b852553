/**
 * Reads of the old price are zero, the rules-change variant (issue 22 item 6):
 * a 2-process node under read load of warm hot SKUs; a second build of the
 * rules, from a copy of go-stock/ with ONE rule changed (a percent
 * promotion's discount rounded up instead of down, SPEC §3 price rule 3),
 * replaces the module in the node's bundle and is rolled in (SIGHUP). From
 * the moment every process's /healthz shows the new rules, no read returns
 * the old rules' result as HIT. The node as deployed (its own copy of the
 * bundle, 2 workerd processes), a real edge Redis, the Go toolchain.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rulesVersionOf } from "../../edge-node/bundle";
import { ensureBundle } from "../../scripts/edge-node";
import { moduleOf, rulesOf } from "./rules-module";
import { BUNDLE_DIR, ROOT } from "../../edge-node/workerd-config";
import { encodeRecord } from "../../records/encode";
import { metricOf, postTo, stockRecord, startNodeStack, type NodeStack } from "./edge-node-client";

const TOKEN = "rules-change-test-token";
const READ_COMPUTATIONS = 'edge_aggregate_computations_total{trigger="read"}';
const RECORD_READS = "edge_redis_record_reads_total";
/** The percent promotion of every test SKU: 15 %, in basis points (SPEC §2). */
const PERCENT = 1_500;
/** The rule changed: the discount of a percent promotion, floor(list × value / 10000) (SPEC §3 price rule 3)... */
const RULE = "return list - list*pr.Value/MaxBasis // list ≤ 10^12, value ≤ 10^4: no overflow";
/** ...rounded up instead. */
const CHANGED = "return list - (list*pr.Value+MaxBasis-1)/MaxBasis";

/** The price in force under the old rules and under the changed one, computed here from the rule, not read from a node. */
const oldPrice = (list: number): number => list - Math.floor((list * PERCENT) / 10_000);
const newPrice = (list: number): number => list - Math.ceil((list * PERCENT) / 10_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let stack: NodeStack;
let scratch: string;
let bundle: string;
/** The module of the changed rules, and its rules version. */
let changed: Buffer;

/** What a read of the load answered (or the error it threw): when it was sent (performance.now()), which SKU. */
interface Sample {
  sku: string;
  sentAt: number;
  status?: number;
  cache?: string | null;
  rules?: string | null;
  amount?: number;
  computedAt?: number;
  error?: string;
}

async function read(url: string, sku: string, headers: Record<string, string> = {}): Promise<Omit<Sample, "sentAt"> & { staleBecause: string | null }> {
  const res = await fetch(`${url}/v1/skus/${sku}`, { headers });
  const body = (await res.json()) as { price?: { amount: number }; computedAt?: number };
  return { sku, status: res.status, cache: res.headers.get("X-Cache"), rules: res.headers.get("X-Rules-Version"), amount: body.price?.amount, computedAt: body.computedAt, staleBecause: res.headers.get("X-Stale-Because") };
}

beforeAll(async () => {
  ensureBundle();
  scratch = mkdtempSync(path.join(tmpdir(), "rules-change-"));
  // The second build: a copy of go-stock/ with one rule changed, built by its own build script (Go's build cache is shared).
  const go = path.join(scratch, "go-stock");
  cpSync(path.join(ROOT, "go-stock"), go, { recursive: true });
  const price = path.join(go, "rules/price.go");
  const source = readFileSync(price, "utf8");
  expect(source).toContain(RULE);
  writeFileSync(price, source.replace(RULE, CHANGED));
  const out = path.join(scratch, "changed/go-stock.wasm");
  execFileSync("bash", [path.join(go, "build.sh"), out], { cwd: go, stdio: "pipe" });
  changed = readFileSync(out);
  // The node runs a bundle of its own, so that the test can replace its module.
  bundle = path.join(scratch, "bundle");
  cpSync(BUNDLE_DIR, bundle, { recursive: true });
  // No change watch: the records do not change here, and its re-warms would blur the counters.
  stack = await startNodeStack({ token: TOKEN, processes: 2, bundleDir: bundle, vars: { NODE_WATCH_CHANGES: "0" } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("a rules change rolled into a node under read load", () => {
  it("from the moment every process shows the new rules, no read gets the old rules' price as HIT; old entries are at most STALE; one recomputation per key per process; no read fails", async () => {
    const { node, client } = stack;
    const procs = (): string[] => [...node.processes().values()].map((p) => p.url);
    const oldRules = (await rulesOf(node.url))!;
    const newRules = rulesVersionOf(changed);
    expect(newRules).not.toBe(oldRules);

    // 8 hot SKUs, and one warmed but not read under load; odd list prices, whose 15 % is never whole, so the rounding shows.
    const list = new Map<string, number>();
    for (let i = 0; i < 8; i++) list.set(`rc-${process.pid}-${i}`, 10_001 + 38 * i);
    const kept = `rc-${process.pid}-kept`;
    list.set(kept, 20_011);
    const hot = [...list.keys()].filter((s) => s !== kept);
    const now = Date.now();
    for (const [sku, base] of list) {
      expect(newPrice(base)).toBe(oldPrice(base) - 1);
      const promotions = [{ id: `pct-${process.pid}`, kind: "percent" as const, value: PERCENT, startsAt: now - 60_000, endsAt: now + 3_600_000 }];
      await client.set(`sku:${sku}:stock`, stockRecord(sku));
      await client.set(`sku:${sku}:price`, Buffer.from(encodeRecord({ sku, currency: "CNY", base, promotions, updatedAt: now })));
    }
    expect(await (await postTo(node.url, "/v1/prewarm", { skus: [...list.keys()], ttl: 600 }, TOKEN)).json()).toMatchObject({ warmed: list.size, rules: oldRules });
    for (const url of procs()) {
      for (const [sku, base] of list) expect(await read(url, sku)).toMatchObject({ status: 200, cache: "HIT", rules: oldRules, amount: oldPrice(base) });
    }
    await sleep(1_500); // the node's totals are up to date
    const computationsBefore = await metricOf(node.url, READ_COMPUTATIONS);
    const recordReadsBefore = await metricOf(node.url, RECORD_READS);

    // 6 readers on the node's port (the kernel spreads their connections over the processes), each over every hot SKU.
    // A read whose keep-alive connection a draining process closed before any byte of an answer (workerd closes its idle
    // connections when told to drain, and a request already on its way on one is lost) is sent again once on a new
    // connection, as HTTP lets a client do for a GET (RFC 9112 §9.3.1) and as browsers and proxies do; such retries are counted.
    const samples: Sample[] = [];
    const retried: { at: number; cause: string }[] = [];
    let swappedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    const reader = async (j: number): Promise<void> => {
      for (let n = j; !stop; n++) {
        const sku = hot[n % hot.length]!;
        for (let attempt = 0; ; attempt++) {
          const sentAt = performance.now();
          try {
            samples.push({ ...(await read(node.url, sku)), sentAt });
            break;
          } catch (e) {
            const cause = (e as Error).cause as { code?: string; message?: string } | undefined;
            const closed = cause?.code === "UND_ERR_SOCKET" || cause?.code === "ECONNRESET";
            if (closed && attempt === 0) {
              retried.push({ at: Math.round(sentAt - swappedAt), cause: `${cause?.code ?? ""} ${cause?.message ?? ""}` });
              continue;
            }
            samples.push({ sku, sentAt, error: `${(e as Error).message}: ${cause?.code ?? ""} ${cause?.message ?? ""}` });
            break;
          }
        }
      }
    };
    const loadStartedAt = performance.now();
    const load = Promise.all([0, 1, 2, 3, 4, 5].map(reader));
    await sleep(800);

    // The new module put in place whole (as a rebuild does), and SIGHUP: a rolling restart, one process at a time.
    const file = moduleOf(bundle);
    writeFileSync(`${file}.new`, changed);
    const logFrom = node.log().length;
    swappedAt = performance.now();
    renameSync(`${file}.new`, file);
    node.process.kill("SIGHUP");
    // The roll is confirmed when every process's /healthz (its own probe port) shows the new rules.
    let confirmedAt = 0;
    while (!confirmedAt && performance.now() - swappedAt < 30_000) {
      const shown = await Promise.all(procs().map((url) => rulesOf(url).catch(() => undefined)));
      if (shown.length === 2 && shown.every((r) => r === newRules)) confirmedAt = performance.now();
      else await sleep(10);
    }
    expect(confirmedAt, node.log()).toBeGreaterThan(0);
    // A look at the key no one read: what the old rules computed is STALE because of the rules, on every process.
    for (const url of procs()) {
      expect(await read(url, kept, { "Cache-Control": "only-if-cached" })).toMatchObject({ status: 200, cache: "STALE", staleBecause: "rules", rules: oldRules, amount: oldPrice(list.get(kept)!) });
    }
    await sleep(2_500);
    stop = true;
    await load;
    const loadSeconds = (performance.now() - loadStartedAt) / 1000;
    const log = node.log().slice(logFrom);
    expect(log, node.log()).toContain(`rolling restart done: 2 processes run rules ${newRules}`);

    // Every read answered 200 (a few after one retry on a new connection, each during the roll: at most one per
    // reader connection per process drained), each with the price its rules compute.
    const failed = samples.filter((s) => s.error !== undefined || s.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    expect(retried.filter((r) => !(r.at >= 0)), JSON.stringify(retried)).toEqual([]);
    expect(retried.length, JSON.stringify(retried)).toBeLessThanOrEqual(6 * 2);
    const wrong = samples.filter((s) => s.amount !== (s.rules === oldRules ? oldPrice(list.get(s.sku)!) : s.rules === newRules ? newPrice(list.get(s.sku)!) : NaN));
    expect(wrong, JSON.stringify(wrong.slice(0, 3))).toEqual([]);
    const after = samples.filter((s) => s.sentAt >= confirmedAt);
    expect(after.length).toBeGreaterThan(100);
    // From the confirmation on: the old rules' price never as HIT, old entries at most STALE.
    const oldHits = after.filter((s) => s.cache === "HIT" && (s.rules !== newRules || s.amount !== newPrice(list.get(s.sku)!)));
    expect(oldHits, `old rules' result as HIT after the roll: ${JSON.stringify(oldHits.slice(0, 3))}`).toEqual([]);
    expect(after.filter((s) => s.rules === oldRules && s.cache !== "STALE")).toEqual([]);
    const during = samples.filter((s) => s.sentAt >= swappedAt && s.sentAt < confirmedAt);
    const lastOldHit = Math.max(-1, ...samples.filter((s) => s.cache === "HIT" && s.rules === oldRules).map((s) => s.sentAt - swappedAt));

    // Each process now serves every key HIT with the new rules' price.
    for (const url of procs()) {
      for (const sku of hot) expect(await read(url, sku)).toMatchObject({ status: 200, cache: "HIT", rules: newRules, amount: newPrice(list.get(sku)!) });
    }
    // The key no one read: STALE (old rules) once while one recomputation replaces it, then HIT (new), on the other process too.
    const [p1, p2] = procs();
    const first = await read(p1!, kept);
    expect([first.cache, first.rules, first.amount]).toEqual(["STALE", oldRules, oldPrice(list.get(kept)!)]);
    let later = first;
    for (let i = 0; i < 50 && later.cache !== "HIT"; i++, await sleep(20)) later = await read(p1!, kept);
    expect(later).toMatchObject({ cache: "HIT", rules: newRules, amount: newPrice(list.get(kept)!) });
    expect(await read(p2!, kept)).toMatchObject({ cache: "HIT", rules: newRules, amount: newPrice(list.get(kept)!) });

    await sleep(1_500); // the node's totals are up to date
    const recomputed = (await metricOf(node.url, READ_COMPUTATIONS)) - computationsBefore;
    const recordReads = (await metricOf(node.url, RECORD_READS)) - recordReadsBefore;
    const versions = new Set(after.filter((s) => s.rules === newRules).map((s) => `${s.sku} ${s.computedAt}`));
    console.log(
      `rules change under load: ${samples.length} reads (${Math.round(samples.length / loadSeconds)}/s); ` +
        `roll confirmed ${Math.round(confirmedAt - swappedAt)} ms after the swap; ${during.length} reads during it (${during.filter((s) => s.rules === newRules).length} new rules, ${during.filter((s) => s.cache === "STALE").length} STALE), the last old-rules HIT sent ${Math.round(lastOldHit)} ms after the swap; ` +
        `${after.length} after it (${after.filter((s) => s.cache === "STALE").length} STALE, ${after.filter((s) => s.rules === oldRules).length} old rules); ` +
        `${retried.length} reads sent again on a new connection (${JSON.stringify(retried)}); ` +
        `${list.size} keys: ${recomputed} read computations, ${recordReads} SKU record reads; ${versions.size} new-rules computations of the hot keys seen after the roll`,
    );
    // At most one recomputation per key per process (2 processes); each key at least once.
    expect(recordReads).toBeGreaterThanOrEqual(list.size);
    expect(recordReads).toBeLessThanOrEqual(2 * list.size);
    expect(recomputed).toBeLessThanOrEqual(2 * list.size);
  }, 60_000);
});

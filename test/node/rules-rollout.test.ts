/**
 * SPEC §9's rules version on a self-hosted node, and a rollout of new rules
 * (SIGHUP: a rolling restart of the workerd processes onto the bundle as it
 * is now), on a real 2-process node under read load.
 */
import autocannon from "autocannon";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBundle } from "../../scripts/edge-node";
import { moduleOf, rulesOf, withCustomSection } from "./rules-module";
import { BUNDLE_DIR, ROOT } from "../../edge-node/workerd-config";
import { parseConfig } from "../../prewarm-scheduler/config/config";
import { Engine } from "../../prewarm-scheduler/runs/engine";
import { opsApp } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { parsePlan } from "../../prewarm-scheduler/plans/plan";
import { verifyPlan } from "../../prewarm-scheduler/fleet/verify";
import { startRedis } from "../../scripts/redis-server";
import { type NodeStack, postTo, readSku, seedRecords, startNodeStack } from "./edge-node-client";

const TOKEN = "rules-test-token";
const sha12 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex").slice(0, 12);

let stack: NodeStack;
let bundle: string;
let scratch: string;
beforeAll(async () => {
  // The node runs a bundle of its own (EDGE_NODE_BUNDLE_DIR), so that the test can replace its module.
  ensureBundle();
  scratch = mkdtempSync(path.join(tmpdir(), "rules-rollout-"));
  bundle = path.join(scratch, "bundle");
  cpSync(BUNDLE_DIR, bundle, { recursive: true });
  stack = await startNodeStack({ token: TOKEN, processes: 2, bundleDir: bundle });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the rules version of a node", () => {
  const built = (): string => sha12(readFileSync(path.join(ROOT, "build/go-stock.wasm")));

  it("is written beside the module by the build: the first 12 hex digits of the SHA-256 of build/go-stock.wasm", () => {
    expect(readFileSync(path.join(ROOT, "build/go-stock-rules-version.txt"), "utf8").trim()).toBe(built());
  });

  it("is shown by every process's /healthz and carried by the prewarm answer", async () => {
    const { node, client } = stack;
    for (const p of node.processes().values()) expect(await rulesOf(p.url)).toBe(built());
    const sku = `rules-${process.pid}-a`;
    await seedRecords(client, sku, 1_000);
    const res = await postTo(node.url, "/v1/prewarm", { skus: [sku] }, TOKEN);
    expect(await res.json()).toMatchObject({ warmed: 1, rules: built() });
  });
});

describe("SIGHUP", () => {
  it("swaps in a replaced module one process at a time under read load: no request fails, and every process then shows the new rules", async () => {
    const { node, client } = stack;
    const sku = `rules-${process.pid}-b`;
    await seedRecords(client, sku, 2_000);
    expect((await readSku(node.url, sku)).amount).toBe(2_000);
    const before = new Map([...node.processes()].map(([i, p]) => [i, p.pid]));
    const old = await rulesOf(node.url);
    // A key warmed by the old rules, not read during the rollout.
    const kept = `rules-${process.pid}-kept`;
    await seedRecords(client, kept, 2_500);
    await new Promise((r) => setTimeout(r, 100));
    expect((await postTo(node.url, "/v1/prewarm", { skus: [kept], ttl: 600 }, TOKEN)).status).toBe(200);
    expect(await readSku(node.url, kept)).toMatchObject({ cache: "HIT", rules: old });

    const load = autocannon({ url: `${node.url}/v1/skus/${sku}`, connections: 4, duration: 6 });
    await new Promise((r) => setTimeout(r, 1000));
    // A new module file, put in place whole (as a rebuild does), and SIGHUP at once: the roll it starts is
    // under way before the supervisor's once-a-second look at the module would start one of its own.
    const file = moduleOf(bundle);
    const replaced = withCustomSection(readFileSync(file), `${Date.now()}`);
    writeFileSync(`${file}.new`, replaced);
    const rolled = node.log().length;
    renameSync(`${file}.new`, file);
    node.process.kill("SIGHUP");
    const next = sha12(replaced);
    expect(next).not.toBe(old);
    const result = await load;
    const log = node.log().slice(rolled);
    expect(log, node.log()).toContain(`SIGHUP: rolling restart of 2 processes onto rules ${next}`);
    expect(log, node.log()).not.toContain(`now has rules ${next}`); // this roll was the SIGHUP's
    expect(log, node.log()).toContain(`rolling restart done: 2 processes run rules ${next}`);
    // One at a time: process 1's new process answered before process 2 was restarted.
    expect(log.indexOf("process 1 (pid")).toBeLessThan(log.indexOf("process 2 (pid"));

    expect(result.errors + result.timeouts + result.non2xx).toBe(0);
    expect(result["2xx"]).toBeGreaterThan(500);
    const after = node.processes();
    for (const [i, p] of after) {
      expect(p.pid).not.toBe(before.get(i));
      expect(await rulesOf(p.url)).toBe(next);
    }
    expect(await rulesOf(node.url)).toBe(next);
    expect((await readSku(node.url, sku)).amount).toBe(2_000);
    // A verify sees it as not warm, and says why (a look: nothing recomputed).
    const look = (await (await fetch(`${node.url}/v1/skus?ids=${kept}`, { headers: { "Cache-Control": "only-if-cached" } })).json()) as { stale: Record<string, string> };
    expect(look.stale).toEqual({ [kept]: "rules" });
    const cfg = parseConfig({ token: "fleet-secret", nodes: [{ name: "edge-real", url: node.url, region: "cn-east" }] });
    const verified = await verifyPlan(cfg, parsePlan({ name: "rules-kept", skus: { list: [kept] }, verify: { margin: "1m" } }), [kept]);
    expect(verified.nodes[0]).toMatchObject({ ready: 0, stragglers: { rules_mismatch: 1 }, rules: next, rulesMismatch: false });
    // The key the old rules computed is never a HIT on the new ones: STALE (old rules) while one recomputation replaces it.
    const first = await readSku(node.url, kept);
    expect(first).toMatchObject({ status: 200, cache: "STALE", rules: old, amount: 2_500 });
    let later = first;
    for (let i = 0; i < 50 && later.cache !== "HIT"; i++, await new Promise((r) => setTimeout(r, 20))) later = await readSku(node.url, kept);
    expect(later).toMatchObject({ cache: "HIT", rules: next, amount: 2_500 });
  }, 60_000);
});

describe("a module replaced in the bundle", () => {
  it("is rolled in without a SIGHUP: every process then shows its rules", async () => {
    const { node } = stack;
    const old = await rulesOf(node.url);
    const file = moduleOf(bundle);
    const replaced = withCustomSection(readFileSync(file), `no-sighup-${Date.now()}`);
    writeFileSync(`${file}.new`, replaced);
    renameSync(`${file}.new`, file);
    const next = sha12(replaced);
    expect(next).not.toBe(old);
    for (let i = 0; i < 100 && [...node.processes().values()].length > 0; i++) {
      const shown = await Promise.all([...node.processes().values()].map((p) => rulesOf(p.url).catch(() => undefined)));
      if (shown.every((r) => r === next) && (await rulesOf(node.url)) === next) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of node.processes().values()) expect(await rulesOf(p.url), node.log()).toBe(next);
    expect(node.log()).toContain(`now has rules ${next}`);
  }, 30_000);
});

describe("GET /v1/nodes (prewarm nodes list)", () => {
  it("shows each node's rules version: announced, read from a config node's /healthz, unknown for one that does not answer; a malformed announced version is refused", async () => {
    const redis = await startRedis();
    const engine = new Engine(
      parseConfig({
        redis: redis.url,
        prefix: `rules-${process.pid}`,
        token: "fleet-secret",
        nodes: [
          { name: "edge-real", url: stack.node.url, region: "cn-east" },
          { name: "edge-dead", url: "http://127.0.0.1:9", region: "cn-east" },
        ],
        nodeUrlAllow: ["http://10.0.*.*:8787"],
        registryToken: "reg-secret",
      }),
    );
    try {
      const app = opsApp(engine);
      const announce = (body: unknown): Promise<Response> =>
        Promise.resolve(app.request("/v1/nodes/announce", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer reg-secret" }, body: JSON.stringify(body) }));
      const bad = await announce({ name: "edge-sh-1", url: "http://10.0.1.5:8787", region: "cn-east", rules: "ABC" });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { details: string[] } }).error.details).toEqual(["rules: must be a rules version: 12 lowercase hex digits"]);
      expect((await announce({ name: "edge-sh-1", url: "http://10.0.1.5:8787", region: "cn-east", rules: "0123456789ab" })).status).toBe(200);

      const listed = (await (await app.request("/v1/nodes")).json()) as { nodes: { name: string; source: string; rules: string }[] };
      expect(listed.nodes.map((n) => [n.name, n.source, n.rules])).toEqual([
        ["edge-real", "config", await rulesOf(stack.node.url)],
        ["edge-dead", "config", "unknown"],
        ["edge-sh-1", "announced", "0123456789ab"],
      ]);
    } finally {
      await engine.close();
      await redis.stop();
    }
  });
});

describe("prewarm verify", () => {
  it("reports a node that runs other rules than the plan expects as rules_mismatch, and the plan not met", async () => {
    const { node, client } = stack;
    const sku = `rules-${process.pid}-c`;
    await seedRecords(client, sku, 3_000);
    expect((await postTo(node.url, "/v1/prewarm", { skus: [sku], ttl: 600 }, TOKEN)).status).toBe(200);
    const running = (await rulesOf(node.url))!;
    const cfg = parseConfig({ token: "fleet-secret", nodes: [{ name: "edge-real", url: node.url, region: "cn-east" }] });
    const verify = (rules?: string) => verifyPlan(cfg, parsePlan({ name: "rules", skus: { list: [sku] }, verify: { margin: "1m", ...(rules ? { rules } : {}) } }), [sku]);

    const other = running === "0123456789ab" ? "ba9876543210" : "0123456789ab";
    const mismatch = await verify(other);
    expect(mismatch).toMatchObject({ ready: 1, met: false, rules: { expected: other, from: "plan" } });
    expect(mismatch.nodes.map((n) => [n.name, n.rules, n.rulesMismatch])).toEqual([["edge-real", running, true]]);
    expect(await verify(running)).toMatchObject({ ready: 1, met: true, rules: { expected: running, from: "plan" } });
    // No version given: the one most target nodes run.
    expect(await verify()).toMatchObject({ met: true, rules: { expected: running, from: "majority" } });
    expect(() => parsePlan({ name: "rules", skus: { list: [sku] }, verify: { rules: "v2" } })).toThrow(/12 lowercase hex digits/);
  });
});

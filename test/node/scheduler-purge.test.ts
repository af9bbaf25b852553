/**
 * Fleet purges (`prewarm purge`, `POST /v1/purge` on the ops API) against the
 * scheduler's stack: two real self-hosted edge nodes and the scheduler's real
 * Redis (or cluster). Only a node from before SPEC §9 (one that ignores
 * tags) is a small HTTP server answering the old shape.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SchedulerConfig } from "../../prewarm-scheduler/config/config";
import { opsApp } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import type { PurgeReport } from "../../prewarm-scheduler/fleet/purge";
import { startEdgeNode } from "../../scripts/edge-node";
import { postTo, readSku } from "./edge-node-client";
import { TOKEN, until, useStack } from "./scheduler/stack";

const ROOT = path.resolve(import.meta.dirname, "../..");
const suite = useStack(40);
const { engine } = suite;

/** Runs the `prewarm` CLI with `cfg` to its exit, with its stdout and stderr; `files` are written beside the config first (args name them by `{dir}/name`). */
async function cli(cfg: SchedulerConfig, args: string[], files: Record<string, unknown> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), "prewarm-purge-"));
  const configFile = path.join(dir, "config.yaml");
  writeFileSync(configFile, stringify(cfg));
  for (const [name, doc] of Object.entries(files)) writeFileSync(path.join(dir, name), stringify(doc));
  args = args.map((a) => a.replace("{dir}", dir));
  try {
    return await new Promise((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "prewarm-scheduler/cli/cli.ts"), ...args, "--config", configFile], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("exit", (code) => resolve({ code, out, err }));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Warms `skus` on a node (its own region), with `tags` on them. */
async function warm(url: string, skus: string[], tags?: string[]): Promise<void> {
  const res = await postTo(url, "/v1/prewarm", { skus, ...(tags ? { tags } : {}) }, TOKEN);
  expect(res.status).toBe(200);
  expect(((await res.json()) as { warmed: number }).warmed).toBe(skus.length);
}

/** Whether every process of a node has dropped `sku` (a purge holds for all of them within 1 s, SPEC §7): 8 reads in a row without it, within 3 s. */
async function gone(url: string, sku: string): Promise<boolean> {
  const end = Date.now() + 3000;
  let misses = 0;
  while (misses < 8 && Date.now() < end) misses = (await cached(url, sku)) ? 0 : misses + 1;
  return misses >= 8;
}

/** Whether a node has `sku` cached (read from its cache alone: warms nothing). */
async function cached(url: string, sku: string): Promise<boolean> {
  const r = await readSku(url, sku, { headers: { "Cache-Control": "only-if-cached" } });
  if (r.status !== 200 && r.status !== 504) throw new Error(`only-if-cached read of ${sku}: ${r.status} ${r.code}`);
  return r.status === 200;
}

const post = (app: ReturnType<typeof opsApp>, route: string, body: unknown, token?: string): Promise<Response> =>
  Promise.resolve(app.request(route, { method: "POST", headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) }));

describe("prewarm purge", () => {
  it("purges SKUs on every node of the fleet, reports each node's count, and is recorded (who, what, per node) in prewarm list and status", async () => {
    const [east, north] = suite.stack.edges;
    const skus = suite.stack.skus.slice(0, 3);
    await warm(east!.node.url, skus);
    await warm(north!.node.url, skus.slice(0, 2));
    const cfg = suite.stack.config();

    const r = await cli(cfg, ["purge", ...skus.flatMap((s) => ["--sku", s]), "--json"]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as PurgeReport;
    expect(report.ok).toBe(true);
    expect(report.by.via).toBe("cli");
    expect(report.request).toEqual({ skus, soft: false });
    expect(Object.fromEntries(report.results.map((n) => [n.name, [n.status, n.purged]]))).toEqual({ "edge-east": ["purged", 3], "edge-north": ["purged", 2] });
    for (const sku of skus) {
      expect(await gone(east!.node.url, sku)).toBe(true);
      expect(await gone(north!.node.url, sku)).toBe(true);
    }

    // Recorded like a run: prewarm list shows it apart from the runs, status and the ops API read it back.
    const list = await cli(cfg, ["list", "--json"]);
    expect(list.code, list.err).toBe(0);
    const listed = JSON.parse(list.out) as { runs: unknown[]; purges: PurgeReport[] };
    expect(listed.runs).toEqual([]);
    expect(listed.purges.map((p) => [p.purgeId, p.kind, p.confirmed])).toEqual([[report.purgeId, "purge", 2]]);
    const text = await cli(cfg, ["list"]);
    expect(text.out).toMatch(new RegExp(`purges:\\n  ${report.purgeId} +purged +2/2 nodes, 5 purged: skus ${skus.join(", ")}  by cli`));
    const status = await cli(cfg, ["status", report.purgeId]);
    expect(status.out).toMatch(/edge-north +cn-north +purged 2/);
    const e = engine(cfg, false);
    const viaApi = (await (await opsApp(e).request(`/v1/purges/${report.purgeId}`)).json()) as PurgeReport;
    expect(viaApi.results).toEqual(report.results);
  }, 60_000);

  it("--region and --nodes restrict the targets; the region is passed to the node", async () => {
    const [east, north] = suite.stack.edges;
    const sku = suite.stack.skus[5]!;
    await warm(east!.node.url, [sku]);
    await warm(north!.node.url, [sku]);
    const cfg = suite.stack.config();
    const r = await cli(cfg, ["purge", "--sku", sku, "--region", "cn-north", "--json"]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as PurgeReport;
    expect(report.results.map((n) => [n.name, n.purged])).toEqual([["edge-north", 1]]);
    expect(report.request.region).toBe("cn-north");
    expect(await gone(north!.node.url, sku)).toBe(true);
    expect(await cached(east!.node.url, sku)).toBe(true);
    const only = await cli(cfg, ["purge", "--sku", sku, "--nodes", "edge-east", "--json"]);
    expect((JSON.parse(only.out) as PurgeReport).results.map((n) => [n.name, n.purged])).toEqual([["edge-east", 1]]);
    expect(await gone(east!.node.url, sku)).toBe(true);
  }, 60_000);

  it("refuses bad input before any node is asked: a clear error, exit 2, nothing purged or recorded", async () => {
    const east = suite.stack.edges[0]!;
    const sku = suite.stack.skus[7]!;
    await warm(east.node.url, [sku]);
    const cfg = suite.stack.config();
    const cases: [string[], RegExp][] = [
      [["--tag", "promo:X", "--tag", "colour:red"], /tags\[1\]: must be kind:value, kind one of sku, promo, wh, plan, campaign, label/],
      [["--tag", "promo:has space"], /tags\[0\]: must be kind:value/],
      [["--tag", `label:${"x".repeat(129)}`], /tags\[0\]: must be kind:value/],
      [["--sku", "not a sku"], /skus\[0\]: must be a SKU id/],
      [[], /a purge names skus or tags/],
      [Array.from({ length: 1001 }, (_, i) => ["--sku", `s${i}`]).flat(), /skus: at most 1000 SKUs per purge: split it/],
      [["--sku", sku, "--nodes", "edge-east,edge-nowhere"], /nodes: not in the fleet \(config or registry\): edge-nowhere/],
      [["--sku", sku, "--region", "eu-west"], /region: no target node serves eu-west/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(cfg, ["purge", ...args]);
      expect(r.code, `${args.slice(0, 4).join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(message);
    }
    expect(await cached(east.node.url, sku)).toBe(true);
    const e = engine(cfg, false);
    expect(await e.purges.list()).toEqual([]);
  }, 120_000);

  it("POST /v1/purge on the ops API: behind the ops token, 400 naming bad fields, 502 naming a node that did not confirm, the caller recorded", async () => {
    const east = suite.stack.edges[0]!;
    const sku = suite.stack.skus[8]!;
    await warm(east.node.url, [sku]);
    const cfg = suite.stack.config({ opsToken: "ops-secret", nodes: [{ name: "edge-east", url: east.node.url, region: east.region }, await suite.stack.deadNode()] });
    const e = engine(cfg, false);
    const app = opsApp(e);
    expect((await post(app, "/v1/purge", { skus: [sku] })).status).toBe(401);
    expect(await cached(east.node.url, sku)).toBe(true);
    const bad = await post(app, "/v1/purge", { tags: ["promo:A", "nope:B"], soft: "yes" }, "ops-secret");
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { code: string; details: string[] } };
    expect(badBody.error.code).toBe("bad_request");
    expect(badBody.error.details.join("\n")).toMatch(/tags\[1\]: must be kind:value[^]*soft: /);
    expect(await e.purges.list()).toEqual([]);

    const res = await post(app, "/v1/purge", { skus: [sku], by: "alice" }, "ops-secret");
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string }; purge: PurgeReport };
    expect(body.error.code).toBe("not_all_purged");
    expect(body.error.message).toMatch(/1 of 2 nodes did not confirm the purge \(edge-dead: node_unreachable\)/);
    expect(body.purge.by).toEqual({ via: "api", user: "alice" });
    expect(body.purge.results.map((n) => [n.name, n.status, n.purged ?? n.code])).toEqual([
      ["edge-east", "purged", 1],
      ["edge-dead", "pending", "node_unreachable"],
    ]);
    expect(await gone(east.node.url, sku)).toBe(true);
    expect(await e.purges.pendingCount()).toBe(1);
  }, 60_000);
});

/** The tags a read of `sku` on a node answers (`Surrogate-Key`), and its X-Cache. */
async function surrogateKeys(url: string, sku: string): Promise<{ cache: string | null; tags: string[] }> {
  const res = await fetch(`${url}/v1/skus/${sku}`);
  await res.body?.cancel();
  expect(res.status).toBe(200);
  return { cache: res.headers.get("X-Cache"), tags: (res.headers.get("Surrogate-Key") ?? "").split(" ").filter((t) => t !== "") };
}

describe("runs tag what they warm", () => {
  it("a run of plan P tags every aggregate plan:P and the plan's own tags on every node; prewarm purge --tag plan:P takes them all back", async () => {
    const skus = suite.stack.skus.slice(30, 38);
    const cfg = suite.stack.config();
    const planDoc = { name: "tag-run", skus: { list: skus }, ttl: 600, tags: ["campaign:double-11", "label:homepage"] };
    const run = await cli(cfg, ["run", "{dir}/plan.yaml", "--json", "--no-progress"], { "plan.yaml": planDoc });
    expect(run.code, run.err).toBe(0);
    expect((JSON.parse(run.out) as { nodes: { warmed: number }[] }).nodes.map((n) => n.warmed)).toEqual([skus.length, skus.length]);
    for (const edge of suite.stack.edges) {
      for (const sku of skus) {
        const r = await surrogateKeys(edge.node.url, sku);
        expect(r.cache, `${edge.name} ${sku}`).toBe("HIT");
        expect(r.tags, `${edge.name} ${sku}`).toEqual(expect.arrayContaining(["plan:tag-run", "campaign:double-11", "label:homepage", `sku:${sku}`]));
      }
    }

    const purge = await cli(cfg, ["purge", "--tag", "plan:tag-run", "--json"]);
    expect(purge.code, purge.err).toBe(0);
    const report = JSON.parse(purge.out) as PurgeReport;
    expect(Object.fromEntries(report.results.map((n) => [n.name, [n.status, n.purged]]))).toEqual({ "edge-east": ["purged", skus.length], "edge-north": ["purged", skus.length] });
    for (const edge of suite.stack.edges) for (const sku of skus) expect(await gone(edge.node.url, sku), `${edge.name} ${sku}`).toBe(true);
  }, 90_000);
});

describe("a node that missed a purge", () => {
  it("is sent it again by the workers' retry when it comes back (a config node stopped during the purge) and no longer serves the key", async () => {
    const north = suite.stack.edges[1]!;
    const skus = suite.stack.skus.slice(10, 14);
    await warm(north.node.url, skus);
    const cfg = suite.stack.config();
    const port = north.node.port;
    await north.node.stop();

    const r = await cli(cfg, ["purge", ...skus.flatMap((s) => ["--sku", s]), "--json"]);
    expect(r.code).toBe(1); // a target did not confirm
    const report = JSON.parse(r.out) as PurgeReport;
    expect(report.results.map((n) => [n.name, n.status, n.code ?? null])).toEqual([
      ["edge-east", "purged", null],
      ["edge-north", "pending", "node_unreachable"],
    ]);

    // The node comes back, with what its edge Redis held: the purged keys are still cached there.
    north.node = await startEdgeNode({ port, vars: { EDGE_REGION: north.region, EDGE_REDIS_URL: north.redis.url, PREWARM_TOKEN: TOKEN } });
    const e = engine(cfg); // a process with workers: it retries the pending purge
    const done = await until(() => e.purges.report(report.purgeId), (p) => p?.ok === true, 20_000);
    expect(done!.results.find((n) => n.name === "edge-north")).toMatchObject({ status: "purged", purged: skus.length, replayed: true });
    for (const sku of skus) expect(await gone(north.node.url, sku)).toBe(true);
    expect(await e.purges.pendingCount()).toBe(0);
  }, 120_000);

  it("is sent it at its next announce when it was absent from the registry during the purge", async () => {
    const north = suite.stack.edges[1]!;
    const skus = suite.stack.skus.slice(20, 22);
    await warm(north.node.url, skus);
    const port = north.node.port;
    // The node is a registry node here (it announces itself), absent while stopped.
    const cfg = suite.stack.config({ nodes: [], registryToken: "reg-token", nodeUrlAllow: [`http://127.0.0.1:${port}`], nodeAbsentAfterMs: 100 });
    const e = engine(cfg, false); // no workers: only the announce sends it
    const app = opsApp(e);
    const entry = { name: "edge-n2", url: north.node.url, region: north.region };
    expect((await post(app, "/v1/nodes/announce", entry, "reg-token")).status).toBe(200);
    await north.node.stop();
    await new Promise((res) => setTimeout(res, 200));

    const report = await e.purges.purge({ skus, soft: false }, { via: "cli", user: "test" });
    expect(report.ok).toBe(false);
    expect(report.results.map((n) => [n.name, n.status, n.code])).toEqual([["edge-n2", "pending", "node_absent"]]);

    north.node = await startEdgeNode({ port, vars: { EDGE_REGION: north.region, EDGE_REDIS_URL: north.redis.url, PREWARM_TOKEN: TOKEN } });
    expect(await cached(north.node.url, skus[0]!)).toBe(true); // still there until the purge reaches it
    expect((await post(app, "/v1/nodes/announce", entry, "reg-token")).status).toBe(200);
    await until(() => e.purges.report(report.purgeId), (p) => p?.ok === true, 10_000);
    for (const sku of skus) expect(await gone(north.node.url, sku)).toBe(true);
  }, 120_000);
});

describe("purge by tag and soft purge on real nodes", () => {
  it("a hard purge by tag removes every tagged aggregate on every node and reports each node's count", async () => {
    const skus = suite.stack.skus.slice(15, 19);
    const other = suite.stack.skus[19]!;
    for (const edge of suite.stack.edges) {
      await warm(edge.node.url, skus, ["campaign:purge-hard"]);
      await warm(edge.node.url, [other]);
    }
    const cfg = suite.stack.config();
    const r = await cli(cfg, ["purge", "--tag", "campaign:purge-hard", "--json"]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as PurgeReport;
    expect(report.request).toEqual({ tags: ["campaign:purge-hard"], soft: false });
    expect(Object.fromEntries(report.results.map((n) => [n.name, [n.status, n.purged]]))).toEqual({ "edge-east": ["purged", skus.length], "edge-north": ["purged", skus.length] });
    for (const edge of suite.stack.edges) {
      for (const sku of skus) expect(await gone(edge.node.url, sku), `${edge.name} ${sku}`).toBe(true);
      expect(await cached(edge.node.url, other), `${edge.name} ${other} is not tagged`).toBe(true);
    }
  }, 60_000);

  it("a soft purge by tag and SKU in one region: the node counts both, a read right after the 1 s bound answers the old aggregate as STALE, then a newer one as HIT; other regions keep theirs", async () => {
    const tagged = suite.stack.skus.slice(24, 28);
    const bySku = suite.stack.skus[28]!;
    const [east, north] = suite.stack.edges;
    for (const edge of [east!, north!]) {
      await warm(edge.node.url, tagged, ["label:purge-soft"]);
      await warm(edge.node.url, [bySku]);
    }
    const before = await readSku(east!.node.url, tagged[0]!);
    expect(before.cache).toBe("HIT");
    const cfg = suite.stack.config();
    const r = await cli(cfg, ["purge", "--tag", "label:purge-soft", "--sku", bySku, "--soft", "--region", "cn-east", "--json"]);
    expect(r.code, r.err).toBe(0);
    const purgedAt = Date.now();
    const report = JSON.parse(r.out) as PurgeReport;
    expect(report.request).toEqual({ region: "cn-east", skus: [bySku], tags: ["label:purge-soft"], soft: true });
    expect(report.results.map((n) => [n.name, n.status, n.purged])).toEqual([["edge-east", "purged", tagged.length + 1]]);

    // SPEC §9: the purge holds for every process of the node 1 s after its answer.
    await new Promise((res) => setTimeout(res, Math.max(0, purgedAt + 1000 - Date.now())));
    const stale = await readSku(east!.node.url, tagged[0]!);
    expect(stale).toMatchObject({ status: 200, cache: "STALE", computedAt: before.computedAt });
    const fresh = await until(() => readSku(east!.node.url, tagged[0]!), (x) => x.cache === "HIT");
    expect(fresh.computedAt!).toBeGreaterThan(before.computedAt!);
    for (const sku of [...tagged.slice(1), bySku]) expect((await readSku(east!.node.url, sku)).cache, sku).not.toBe("HIT");
    // Not in cn-north: its node was not a target.
    for (const sku of [...tagged, bySku]) expect((await readSku(north!.node.url, sku)).cache, sku).toBe("HIT");
  }, 60_000);
});

describe("a node from before SPEC §9 (a recording server answering the old purge shape)", () => {
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ region: "cn-east", purged: 0, notCached: [] }));
      });
    });
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((res) => server.close(() => res())));

  it("does not confirm a purge by tag: its answer (no `soft`) ignored the tags", async () => {
    const cfg = suite.stack.config({ nodes: [{ name: "edge-rec", url, region: "cn-east" }] });
    const old = await cli(cfg, ["purge", "--tag", "promo:P-11", "--json"]);
    expect(old.code).toBe(1);
    expect((JSON.parse(old.out) as PurgeReport).results[0]).toMatchObject({ status: "pending", code: "unsupported" });
  }, 60_000);
});

describe("retention", () => {
  it("keeps the newest retention.runs purges, and a purge still pending on a node until it settles", async () => {
    const east = suite.stack.edges[0]!;
    const cfg = suite.stack.config({ retention: { runs: 3 }, nodes: [{ name: "edge-east", url: east.node.url, region: east.region }] });
    const e = engine(cfg, false);
    const dead = await suite.stack.deadNode();
    const first = await e.purges.purge({ skus: ["x-0"], soft: false }, { via: "cli" });
    expect(first.ok).toBe(true);
    // One purge that a dead node never confirms: kept past the retention while it is pending.
    const cfgDead = { ...cfg, nodes: [...cfg.nodes, dead] };
    const e2 = engine(cfgDead, false);
    const stuck = await e2.purges.purge({ skus: ["x-1"], soft: false }, { via: "cli" });
    expect(stuck.ok).toBe(false);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await e.purges.purge({ skus: [`y-${i}`], soft: false }, { via: "cli" })).purgeId);
    expect(await e.purges.list(100)).toEqual([...ids.slice(-3).reverse(), stuck.purgeId]);
    expect(await e.purges.report(first.purgeId)).toBeNull();
  }, 60_000);
});

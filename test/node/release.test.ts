/**
 * A node runs a built release (issue 22): `npm run release`'s artifact,
 * unpacked outside the repository, runs with no Go, no tsx, no npm, no
 * node_modules and nothing on PATH, started and reloaded exactly as the
 * systemd unit in deploy/systemd/ says, against a real edge Redis and the
 * reference regional aggregator; a second release switched in under
 * `current` is rolled in by the unit's ExecReload (SIGHUP) with no request
 * dropped.
 */
import autocannon from "autocannon";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegional, type Regional } from "../../regional/server";
import { freePort, startRedis, type RedisProcess } from "../../scripts/redis-server";
import { BUNDLE_DIR, ROOT } from "../../edge-node/workerd-config";
import { postTo, readSku, seedRecords } from "./edge-node-client";
import { withCustomSection } from "./rules-module";

const UNIT = path.join(ROOT, "deploy/systemd/edge-prewarm-node.service");
const ENV_FILE = path.join(ROOT, "deploy/systemd/edge-prewarm-node.env");
/** Where the unit expects releases; the test installs under a temporary directory instead. */
const INSTALL = "/opt/edge-prewarm";
const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** `npm run release`'s builder; its one line of output. */
function release(args: string[] = []): string {
  return execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/release.ts"), ...args], { cwd: ROOT, encoding: "utf8" }).trim();
}

/** The artifact a release line names. */
function artifactOf(line: string): string {
  const m = /^release (?:built|up to date): (\S+\.tar\.gz) /.exec(line);
  if (!m) throw new Error(`unexpected release output: ${line}`);
  return m[1]!;
}

/** The `Key=value` lines of a unit's [Service] section. */
function serviceKeys(unit: string): Map<string, string> {
  const service = /^\[Service\]\n([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(unit)![1]!;
  return new Map(
    service
      .split("\n")
      .filter((l) => /^[A-Za-z]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** An EnvironmentFile's NAME=value lines (systemd's syntax, as the example uses it: no quotes, comments on their own lines). */
function environmentFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((l) => /^[A-Z][A-Z0-9_]*=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** Splits a systemd command line on spaces (the unit's are plain words), `$MAINPID` replaced. */
function commandLine(line: string, mainPid?: number): string[] {
  return line.split(/\s+/).map((w) => (mainPid !== undefined ? w.replace("$MAINPID", String(mainPid)) : w));
}

let root: string;
let redis: RedisProcess;
let regionalRedis: RedisProcess;
let regional: Regional;
let client: Redis;
let first: string;
let second: string;
let node: ChildProcess | null = null;
let log = "";
let port: number;
let keys: Map<string, string>;
const TOKEN = "release-test-token";

const nameOf = (artifact: string): string => path.basename(artifact, ".tar.gz");
const rulesOfName = (artifact: string): string => /-rules-([0-9a-f]{12})-linux-x64\.tar\.gz$/.exec(artifact)![1]!;
const current = (): string => path.join(root, "current");

/** Points `current` at the unpacked release, replacing the link whole (rename), as the README's rollout does. */
function switchCurrent(artifact: string): void {
  symlinkSync(path.join("releases", nameOf(artifact)), `${current()}.new`);
  renameSync(`${current()}.new`, current());
}

beforeAll(async () => {
  // The bundle as npm run release builds it (prepare.ts builds only what is stale), then the two releases:
  // this tree's, and one whose module differs in a custom section only (another rules version).
  execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/prepare.ts")], { cwd: ROOT, stdio: "ignore" });
  first = artifactOf(release());
  root = mkdtempSync(path.join(tmpdir(), "edge-release-"));
  expect(path.relative(ROOT, root).startsWith("..")).toBe(true); // outside the repository: no node_modules above it
  const otherBundle = path.join(root, "bundle-b");
  cpSync(BUNDLE_DIR, otherBundle, { recursive: true });
  const module = readdirSync(otherBundle).find((f) => f.endsWith("go-stock.wasm"))!;
  writeFileSync(path.join(otherBundle, module), withCustomSection(readFileSync(path.join(otherBundle, module)), "second release", "release-test"));
  const testReleases = path.join(ROOT, "build/release-test");
  second = artifactOf(release(["--bundle", otherBundle, "--out", testReleases]));
  // Only the latest of this test's own releases is kept (each is ~90 MB).
  for (const f of readdirSync(testReleases)) if (!f.startsWith(nameOf(second))) rmSync(path.join(testReleases, f), { recursive: true, force: true });
  mkdirSync(path.join(root, "releases"));
  for (const a of [first, second]) execFileSync("tar", ["-xzf", a, "-C", path.join(root, "releases")]);
  switchCurrent(first);
  redis = await startRedis();
  regionalRedis = await startRedis();
  regional = await startRegional({ redisUrl: regionalRedis.url });
  client = new Redis(redis.url);
  keys = serviceKeys(readFileSync(UNIT, "utf8").replaceAll(INSTALL, root));
}, 300_000);

afterAll(async () => {
  if (node && node.exitCode === null && node.signalCode === null) {
    node.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 5000));
    node.kill("SIGKILL");
  }
  client?.disconnect();
  await regional?.close();
  await regionalRedis?.stop();
  await redis?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("npm run release", () => {
  it("builds one artifact named for the rules of the module it holds, with every file in its manifest, and no toolchain", () => {
    const built = sha256(readFileSync(path.join(ROOT, "build/go-stock.wasm"))).slice(0, 12);
    expect(path.basename(first)).toBe(`edge-node-0.1.0-rules-${built}-linux-x64.tar.gz`);
    expect(rulesOfName(second)).not.toBe(built);
    const dir = path.join(root, "releases", nameOf(first));
    const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8")) as { name: string; rules: string; workerd: string; node: string; files: Record<string, string> };
    expect(manifest).toMatchObject({ name: nameOf(first), rules: built, workerd: expect.stringMatching(/^1\.\d+\.\d+$/), node: expect.stringMatching(/^22\./) });
    const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => !["bin", "lib", "bundle", "manifest.json"].includes(f));
    expect(files.sort()).toEqual(Object.keys(manifest.files).sort());
    for (const [f, hash] of Object.entries(manifest.files)) expect(sha256(readFileSync(path.join(dir, f))), f).toBe(hash);
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(["bin/edge-node", "bin/node", "bin/workerd", "lib/main.js", "lib/supervisor.js", "bundle/index.js", "bundle/compat.json"]));
    expect(Object.keys(manifest.files).filter((f) => f.endsWith("go-stock.wasm"))).toHaveLength(1);
    expect(files.filter((f) => f.includes("node_modules") || f.endsWith(".ts"))).toEqual([]);
  });

  it("is not built again when its inputs have not changed", () => {
    const started = performance.now();
    expect(release()).toMatch(/^release up to date: /);
    expect(performance.now() - started).toBeLessThan(20_000);
  });
});

describe("the systemd unit", () => {
  it.runIf(spawnSync("systemd-analyze", ["--version"]).status === 0)("passes systemd-analyze verify, pointed at the unpacked release", () => {
    const dir = mkdtempSync(path.join(root, "unit-"));
    const env = path.join(dir, "node.env");
    writeFileSync(env, readFileSync(ENV_FILE));
    writeFileSync(path.join(dir, "edge-prewarm-node.service"), readFileSync(UNIT, "utf8").replaceAll(INSTALL, root).replace("/etc/edge-prewarm/node.env", env));
    const r = spawnSync("systemd-analyze", ["verify", path.join(dir, "edge-prewarm-node.service")], { encoding: "utf8" });
    expect(r.stderr + r.stdout).toBe("");
    expect(r.status).toBe(0);
  });

  it("asks for what the node needs: an unprivileged user, reload by SIGHUP, SIGTERM to stop, a restart on failure, hardening", () => {
    expect(keys.get("User")).toBe("edge-prewarm");
    expect(keys.get("ExecStart")).toBe(path.join(root, "current/bin/edge-node"));
    expect(keys.get("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(keys.get("KillSignal")).toBe("SIGTERM");
    expect(keys.get("KillMode")).toBe("mixed"); // the launcher drains its workerd processes itself
    expect(keys.get("Restart")).toBe("on-failure");
    for (const k of ["NoNewPrivileges", "PrivateTmp"]) expect(keys.get(k), k).toBe("yes");
    expect(keys.get("ProtectSystem")).toBe("strict");
    expect(Number(keys.get("LimitNOFILE"))).toBeGreaterThanOrEqual(65536);
  });
});

describe("a node started from the release as the unit starts it", () => {
  beforeAll(async () => {
    const emptyBin = path.join(root, "empty-bin");
    mkdirSync(emptyBin);
    port = await freePort();
    const env = {
      ...environmentFile(readFileSync(ENV_FILE, "utf8")),
      // Only these differ from the example EnvironmentFile: this test's Redis, region and port, a token, two processes.
      EDGE_REDIS_URL: redis.url,
      REGIONAL_URL: regional.url,
      PREWARM_TOKEN: TOKEN,
      NODE_PORT: String(port),
      NODE_PROCESSES: "2",
      PATH: emptyBin, // no go, no npx, no tsx, no node: the release brings its own
    };
    const [cmd, ...args] = commandLine(keys.get("ExecStart")!);
    node = spawn(cmd!, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    node.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    node.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    for (let i = 0; i < 600 && !log.includes("edge node listening on") && node.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  }, 90_000);

  it("runs with an empty PATH and no node_modules, shows the rules its artifact's name carries, and serves a prewarmed SKU as a HIT", async () => {
    expect(log).toContain(`edge node listening on http://127.0.0.1:${port} (2 processes)`);
    expect(log).toContain(`release ${nameOf(first)} (workerd`);
    const url = `http://127.0.0.1:${port}`;
    const health = (await (await fetch(`${url}/healthz`)).json()) as { status: string; rules: string; store: string };
    expect(health).toMatchObject({ status: "ok", rules: rulesOfName(first), store: "redis" });
    const sku = `release-${process.pid}`;
    await seedRecords(client, sku, 1_250);
    expect(await (await postTo(url, "/v1/prewarm", { skus: [sku] }, TOKEN)).json()).toMatchObject({ warmed: 1, rules: rulesOfName(first) });
    expect(await readSku(url, sku)).toMatchObject({ status: 200, cache: "HIT", amount: 1_250, rules: rulesOfName(first) });
  });

  it("rolls onto the release switched in under current on the unit's ExecReload, one process at a time, with no request dropped", async () => {
    expect(node?.exitCode, log).toBeNull();
    const url = `http://127.0.0.1:${port}`;
    const sku = `release-${process.pid}-roll`;
    await seedRecords(client, sku, 1_250);
    const load = autocannon({ url: `${url}/v1/skus/${sku}`, connections: 2, duration: 5 });
    await new Promise((r) => setTimeout(r, 1000));
    const from = log.length;
    switchCurrent(second);
    const reload = commandLine(keys.get("ExecReload")!, node!.pid);
    execFileSync(reload[0]!, reload.slice(1));
    const next = rulesOfName(second);
    for (let i = 0; i < 300 && !log.slice(from).includes(`rolling restart done: 2 processes run rules ${next}`); i++) await new Promise((r) => setTimeout(r, 100));
    const result = await load;
    const rolled = log.slice(from);
    expect(rolled, log).toContain(`rolling restart done: 2 processes run rules ${next}`);
    expect(rolled).toContain(`release ${nameOf(second)} (workerd`);
    expect(rolled).not.toContain("has another node program"); // the same supervisor and Node: a reload is all it takes
    // One at a time: process 1's new process answered before process 2 was restarted.
    const last = rolled.lastIndexOf(`SIGHUP: rolling restart of 2 processes onto rules ${next}`);
    expect(last).toBeGreaterThanOrEqual(0);
    expect(rolled.indexOf("process 1 (pid", last)).toBeLessThan(rolled.indexOf("process 2 (pid", last));
    if (process.env["RELEASE_TEST_LOG"]) console.log(rolled);
    expect(result.errors + result.timeouts + result.non2xx).toBe(0);
    expect(result["2xx"]).toBeGreaterThan(200);
    expect(((await (await fetch(`${url}/healthz`)).json()) as { rules: string }).rules).toBe(next);
    // The new processes run the second release's workerd, read through `current` when the roll began.
    const pids = [...rolled.matchAll(/process (\d) \(pid (\d+)\) restarted/g)].map((m) => Number(m[2]));
    expect(pids.length).toBeGreaterThanOrEqual(2);
    for (const pid of pids.slice(-2)) expect(readlinkSync(`/proc/${pid}/exe`)).toBe(path.join(root, "releases", nameOf(second), "bin/workerd"));
    expect(await (await postTo(url, "/v1/prewarm", { skus: [sku] }, TOKEN)).json()).toMatchObject({ warmed: 1, rules: next });
    expect(await readSku(url, sku)).toMatchObject({ cache: "HIT", amount: 1_250, rules: next });
  }, 60_000);

  it("rolls back the same way, and says when the release switched in has another node program than the running one", async () => {
    expect(node?.exitCode, log).toBeNull();
    // The first release again, as if built with another supervisor (its manifest's `program`): a reload rolls in its bundle and workerd, and says a restart runs the rest.
    const name = `${nameOf(first)}-other-program`;
    const dir = path.join(root, "releases", name);
    cpSync(path.join(root, "releases", nameOf(first)), dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(path.join(dir, "manifest.json"), "utf8")) as { name: string; program: string };
    writeFileSync(path.join(dir, "manifest.json"), JSON.stringify({ ...manifest, name, program: "0".repeat(64) }));
    const from = log.length;
    symlinkSync(path.join("releases", name), `${current()}.new`);
    renameSync(`${current()}.new`, current());
    const reload = commandLine(keys.get("ExecReload")!, node!.pid);
    execFileSync(reload[0]!, reload.slice(1));
    const back = rulesOfName(first);
    for (let i = 0; i < 300 && !log.slice(from).includes(`rolling restart done: 2 processes run rules ${back}`); i++) await new Promise((r) => setTimeout(r, 100));
    expect(log.slice(from), log).toContain(`rolling restart done: 2 processes run rules ${back}`);
    expect(log.slice(from)).toContain(`SIGHUP: release ${name} has another node program (supervisor or Node) than the running ${nameOf(first)}`);
    expect(((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { rules: string }).rules).toBe(back);
  }, 60_000);

  it("stops on the unit's KillSignal, leaving no workerd behind", async () => {
    expect(node?.exitCode, log).toBeNull();
    const pids = [...log.matchAll(/process \d \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    const exited = new Promise<number | null>((resolve) => node!.once("exit", (code) => resolve(code)));
    node!.kill(keys.get("KillSignal") as NodeJS.Signals);
    expect(await exited).toBe(0);
    expect(log).toContain("edge node: stopped");
    for (const pid of pids) expect(existsSync(`/proc/${pid}`), `workerd ${pid}`).toBe(false);
  }, 30_000);
});

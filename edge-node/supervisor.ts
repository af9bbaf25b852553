/**
 * The self-hosted node's supervisor: runs NODE_PROCESSES workerd processes,
 * process i on the listening socket it inherited as descriptor 3 + i
 * (`main.ts` opened them, all on the node's port with SO_REUSEPORT: the
 * kernel spreads connections over them), restarts a process that dies with
 * backoff while the others keep answering (connections that meanwhile land
 * on its socket wait in its backlog, not refused), and on SIGTERM or SIGINT
 * stops accepting, lets the processes drain and exits, leaving no workerd
 * behind.
 *
 * This process never accepts on the sockets itself: it holds the descriptors
 * only to hand them to new processes (Node would accept on a socket it
 * listens on, and steal connections).
 *
 * Each process also listens on a private probe port of its own on loopback
 * (reported through workerd's --control-fd): the supervisor checks each
 * process's /healthz there.
 *
 * On SIGHUP, or when the bundle's go-stock.wasm is replaced by one of other
 * rules, it swaps in the bundle again (`npm run build:node` rebuilt it): it copies it, stamps its rules version,
 * and restarts the processes one at a time, each new one answering /healthz
 * before the old one of its slot is told to drain (a rolling restart: the
 * sockets stay open and some process always accepts, so no request is
 * dropped). A new bundle whose processes do not come up leaves the old ones
 * running. Run from a release (`npm run release`) behind a `current`
 * symlink, the bundle and the workerd binary are read through the symlink at
 * each roll (EDGE_NODE_BUNDLE_DIR, EDGE_NODE_WORKERD, set by the release's
 * launcher): a SIGHUP after `current` is switched rolls onto the new
 * release's bundle and workerd (the supervisor and Node that run stay those
 * of the release started; the log says when the new one's differ).
 *
 * It also watches the edge Redis for changed records and re-warms the SKUs
 * warm on the node (change-watch.ts; NODE_WATCH_CHANGES=0 switches it off).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { CONFIG_VARS } from "../worker/config";
import { parseConfig, type RawConfig } from "../worker/config";
import { announce, type Announcement } from "./announce";
import { rulesVersionOf, stampRulesVersion } from "./bundle";
import { ChangeWatch } from "./change-watch";
import { readManifest } from "./release-manifest";
import { COMPAT_FILE, ROOT, bundleDir, nodeConfig } from "./workerd-config";
import { workerdBinary } from "./workerd-binary";

/** Process i's listening socket is descriptor FIRST_LISTEN_FD + i here, and 3 in the process. */
const FIRST_LISTEN_FD = 3;
/** Backoff of restarts: doubling from RESTART_MIN_MS to RESTART_MAX_MS; a process that lived RESTART_RESET_MS starts again from the minimum. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
const RESTART_RESET_MS = 10_000;
/** How long processes may take to finish in-flight requests after SIGTERM. */
const DRAIN_MS = 10_000;
const READY_TIMEOUT_MS = 60_000;

/** A copy of the bundle the node runs from, with its workerd config and rules version. */
interface Release {
  dir: string;
  configFile: string;
  /** SPEC §9; null for a bundle without the rules (the benchmarks' empty worker). */
  rules: string | null;
  /** The workerd binary its processes run (its real path: a restart after a crash runs the same one). */
  workerd: string;
}

interface Slot {
  index: number;
  child: ChildProcess | null;
  /** The release its process runs (and a restart after a crash starts again). */
  release: Release;
  probePort: number | null;
  startedAt: number;
  failures: number;
  restartTimer: NodeJS.Timeout | null;
}

const host = process.env["NODE_HOST"]!;
const port = Number(process.env["NODE_PORT"]);
const count = Number(process.env["NODE_PROCESSES"]);
const cfg = parseConfig(process.env as RawConfig);

/**
 * The node runs from its own copy of the bundle, so that a rebuild cannot pull
 * it from under a process being restarted; the config sits beside the files it
 * embeds (main.ts has checked the variables). The rules version is stamped
 * from the module copied, the bytes the processes will run. `bundle` (and the
 * workerd binary) may be reached through a symlink that is switched to another
 * release: each is resolved once here, so that one roll copies one release.
 */
function prepare(bundle: string): Release {
  const dir = mkdtempSync(path.join(tmpdir(), "edge-node-"));
  try {
    const from = realpathSync(bundle);
    const workerd = realpathSync(workerdBinary());
    for (const f of readdirSync(from)) if (f === COMPAT_FILE || f === "index.js" || f.endsWith(".wasm") || f.endsWith(".txt")) copyFileSync(path.join(from, f), path.join(dir, f));
    const rules = stampRulesVersion(dir);
    const configFile = path.join(dir, "workerd.capnp");
    writeFileSync(configFile, nodeConfig(dir, cfg.hotCacheMaxBytes));
    return { dir, configFile, rules, workerd };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The release new processes run: the last one swapped in whole. */
let current = prepare(bundleDir());
/** For profiling (bench:profile): the DevTools inspector of process 1. */
const inspectorPort = process.env["EDGE_NODE_INSPECTOR_PORT"];
const slots: Slot[] = Array.from({ length: count }, (_, index) => ({ index, child: null, release: current, probePort: null, startedAt: 0, failures: 0, restartTimer: null }));
let stopping = false;
let changeWatch: ChangeWatch | null = null;
/** What the node announces to the registry (its rules follow a roll). */
let announced: Announcement | null = null;

/** Only the worker's own variables reach workerd: nothing else of this environment is visible to it. */
const workerEnv: Record<string, string> = {};
for (const v of CONFIG_VARS) if (process.env[v] !== undefined) workerEnv[v] = process.env[v]!;

function log(line: string): void {
  process.stdout.write(`edge node: ${line}\n`);
}

/** Forwards a process's log lines, prefixed, without workerd's note that nodejs_compat is now a default. */
function forward(stream: Readable | null, to: NodeJS.WriteStream, index: number): void {
  if (!stream) return;
  createInterface({ input: stream }).on("line", (line) => {
    if (!line.includes("nodejs_compat became the default")) to.write(`[process ${index + 1}] ${line}\n`);
  });
}

function start(slot: Slot, release = slot.release): Promise<void> {
  slot.restartTimer = null;
  slot.probePort = null;
  slot.startedAt = Date.now();
  slot.release = release;
  const args = ["serve", release.configFile, "--socket-fd", "http=3", "--socket-addr", "probe=127.0.0.1:0", "--control-fd", "4"];
  if (inspectorPort && slot.index === 0) args.push("--inspector-addr", `127.0.0.1:${inspectorPort}`);
  const child = spawn(release.workerd, args, {
    cwd: release.dir,
    env: workerEnv,
    stdio: ["ignore", "pipe", "pipe", FIRST_LISTEN_FD + slot.index, "pipe"],
  });
  slot.child = child;
  forward(child.stdout, process.stdout, slot.index);
  forward(child.stderr, process.stderr, slot.index);
  const ready = new Promise<void>((resolve, reject) => {
    const control = child.stdio[4] as Readable;
    createInterface({ input: control }).on("line", (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; socket?: string; port?: number };
        if (msg.event === "listen" && msg.socket === "probe" && typeof msg.port === "number") {
          slot.probePort = msg.port;
          resolve();
        }
      } catch {
        // not a control message
      }
    });
    child.once("exit", () => reject(new Error(`process ${slot.index + 1} exited before it was ready`)));
  });
  child.once("exit", (code, signal) => {
    if (slot.child !== child) return;
    slot.child = null;
    slot.probePort = null;
    if (stopping) return;
    slot.failures = Date.now() - slot.startedAt >= RESTART_RESET_MS ? 0 : slot.failures + 1;
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** Math.max(0, slot.failures - 1));
    log(`process ${slot.index + 1} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`);
    slot.restartTimer = setTimeout(() => {
      start(slot)
        .then(() => healthy(slot))
        .then(() => log(`process ${slot.index + 1} (pid ${slot.child?.pid}) restarted, probe port ${slot.probePort}`))
        .catch((e: unknown) => log(`process ${slot.index + 1} did not come back: ${(e as Error).message}`));
    }, delay);
  });
  return ready;
}

/** Waits until the process answers /healthz on its probe port (any status: 503 means it answers, degraded). */
async function healthy(slot: Slot): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (slot.probePort === null) throw new Error(`process ${slot.index + 1} is not running`);
    try {
      const res = await fetch(`http://127.0.0.1:${slot.probePort}/healthz`);
      await res.body?.cancel();
      return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`process ${slot.index + 1} did not answer /healthz within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(signal: NodeJS.Signals, exitCode = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(`${signal}: draining ${slots.filter((s) => s.child).length} processes`);
  changeWatch?.close();
  for (const s of slots) if (s.restartTimer) clearTimeout(s.restartTimer);
  // The processes hold their own copies of the sockets; these only fed restarts.
  for (const s of slots) {
    try {
      closeSync(FIRST_LISTEN_FD + s.index);
    } catch {
      // already closed
    }
  }
  await Promise.all(slots.flatMap((s) => (s.child ? [drain(s.child)] : [])));
  for (const d of new Set([current.dir, ...slots.map((s) => s.release.dir)])) rmSync(d, { recursive: true, force: true });
  log("stopped");
  process.exit(exitCode);
}

/** Tells a process to drain and waits until it has exited (killed after DRAIN_MS). */
function drain(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill("SIGKILL"), DRAIN_MS);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/**
 * Swaps in the bundle as it is now, one process at a time: slot i's new
 * process starts on slot i's socket beside the old one and must answer
 * /healthz before the old one drains and the next slot goes. A new process
 * that does not come up is killed and the old one kept: the roll stops there.
 */
async function roll(): Promise<void> {
  let next: Release;
  try {
    next = prepare(bundleDir());
  } catch (e) {
    return log(`SIGHUP: the bundle in ${bundleDir()} cannot be run, keeping the running one: ${(e as Error).message}`);
  }
  log(`SIGHUP: rolling restart of ${slots.length} processes onto rules ${next.rules ?? "(none)"} (running ${current.rules ?? "(none)"})`);
  sayRelease();
  const previous = current;
  for (const slot of slots) {
    if (stopping) return;
    const old = { child: slot.child, probePort: slot.probePort, release: slot.release };
    if (slot.restartTimer) clearTimeout(slot.restartTimer);
    try {
      await start(slot, next);
      await healthy(slot);
    } catch (e) {
      const failed = slot.child;
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      slot.release = old.release;
      if (old.child && old.child.exitCode === null && old.child.signalCode === null) {
        slot.child = old.child;
        slot.probePort = old.probePort;
      } else {
        slot.child = null;
        void start(slot).catch(() => undefined);
      }
      failed?.kill("SIGKILL");
      log(`SIGHUP: process ${slot.index + 1} of the new bundle did not come up (${(e as Error).message}); rolling restart stopped, ${slot.index} of ${slots.length} processes run rules ${next.rules ?? "(none)"}`);
      return;
    }
    log(`process ${slot.index + 1} (pid ${slot.child?.pid}) restarted, probe port ${slot.probePort} (rules ${next.rules ?? "(none)"})`);
    if (old.child) await drain(old.child);
  }
  current = next;
  if (announced) announced.rules = next.rules ?? undefined;
  if (!slots.some((s) => s.release === previous)) rmSync(previous.dir, { recursive: true, force: true });
  log(`SIGHUP: rolling restart done: ${slots.length} processes run rules ${next.rules ?? "(none)"}`);
}

/** The release this supervisor runs from (null in a source tree). */
const runningRelease = readManifest(ROOT);
/** Says which release EDGE_NODE_RELEASE (the launcher's `current`) names now, and whether a SIGHUP can run all of it. */
function sayRelease(): void {
  const named = process.env["EDGE_NODE_RELEASE"];
  if (!named || !runningRelease) return;
  try {
    const next = readManifest(named);
    if (!next) return;
    log(`SIGHUP: release ${next.name} (workerd ${next.workerd}); the node started from ${runningRelease.name}`);
    if (next.program !== runningRelease.program) {
      log(`SIGHUP: release ${next.name} has another node program (supervisor or Node) than the running ${runningRelease.name}: its bundle and workerd are rolled in now; restart the node (systemctl restart) to run the rest`);
    }
  } catch (e) {
    log(`SIGHUP: the manifest of ${named} cannot be read: ${(e as Error).message}`);
  }
}

/** SIGHUPs that come during a roll start one more roll after it (not one each). */
let rolling: Promise<void> | null = null;
let rollAgain = false;
function requestRoll(): void {
  if (stopping) return;
  if (rolling) {
    rollAgain = true;
    return;
  }
  rolling = roll()
    .catch((e: unknown) => log(`SIGHUP: rolling restart failed: ${(e as Error).message}`))
    .finally(() => {
      rolling = null;
      if (rollAgain) {
        rollAgain = false;
        requestRoll();
      }
    });
}

/**
 * The module in the bundle directory is looked at every MODULE_CHECK_MS (its
 * size and mtime; its bytes only when those change): a go-stock.wasm put in
 * place whole (written, then renamed, as a rebuild does) with other rules
 * than the running ones is rolled in as on SIGHUP.
 */
const MODULE_CHECK_MS = 1000;
let moduleSeen = "";
setInterval(() => {
  if (stopping || rolling) return;
  try {
    const dir = bundleDir();
    const file = readdirSync(dir).find((f) => f.endsWith("go-stock.wasm"));
    if (!file) return;
    const st = statSync(path.join(dir, file));
    const seen = `${st.size}:${st.mtimeMs}`;
    if (seen === moduleSeen) return;
    moduleSeen = seen;
    const rules = rulesVersionOf(readFileSync(path.join(dir, file)));
    if (current.rules !== null && rules !== current.rules) {
      log(`the module in ${dir} now has rules ${rules} (running ${current.rules}): rolling restart`);
      requestRoll();
    }
  } catch {
    // A bundle being replaced: looked at again in a second.
  }
}, MODULE_CHECK_MS).unref();

process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGHUP", requestRoll);
process.on("SIGINT", () => void stop("SIGINT"));
// main.ts gone (killed hard): stop rather than leave workerd processes behind.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void stop("SIGTERM");
}, 1000).unref();

/** Asks each running process for /healthz every second: an idle process then still flushes its metrics to the node's totals. */
const HEARTBEAT_MS = 1000;
function heartbeat(): void {
  setInterval(() => {
    for (const s of slots) {
      if (s.probePort === null || stopping) continue;
      fetch(`http://127.0.0.1:${s.probePort}/healthz`, { signal: AbortSignal.timeout(HEARTBEAT_MS) })
        .then((res) => res.body?.cancel())
        .catch(() => undefined);
    }
  }, HEARTBEAT_MS).unref();
}

/** Starts the change watch, unless switched off; a node whose edge Redis refuses it still serves, and says so. */
async function watchChanges(): Promise<void> {
  if (process.env["NODE_WATCH_CHANGES"] === "0") return log("not watching the edge Redis for changed records (NODE_WATCH_CHANGES=0)");
  if (cfg.prewarmToken === "") return log("not watching the edge Redis for changed records: re-warming needs PREWARM_TOKEN");
  let next = 0;
  const watch = new ChangeWatch({
    cfg,
    target: () => {
      const running = slots.filter((s) => s.probePort !== null);
      const s = running[next++ % Math.max(1, running.length)];
      return s ? `http://127.0.0.1:${s.probePort}` : null;
    },
    log,
  });
  try {
    await watch.start();
    changeWatch = watch;
    log("watching the edge Redis for changed records (keyspace notifications); warm SKUs are re-warmed");
  } catch (e) {
    watch.close();
    log(`not watching the edge Redis for changed records: ${(e as Error).message} (allow CONFIG SET notify-keyspace-events K$gxe, or set it yourself)`);
  }
}

try {
  await Promise.all(slots.map((s) => start(s).then(() => healthy(s))));
  heartbeat();
  await watchChanges();
  const schedulerUrl = process.env["NODE_ANNOUNCE_URL"];
  if (schedulerUrl) {
    const version = (JSON.parse(readFileSync(path.join(import.meta.dirname, "../package.json"), "utf8")) as { version: string }).version;
    announced = { name: process.env["NODE_NAME"]!, url: process.env["NODE_PUBLIC_URL"]!, region: cfg.edgeRegion, processes: count, version };
    if (current.rules) announced.rules = current.rules;
    announce({ schedulerUrl, token: process.env["NODE_ANNOUNCE_TOKEN"] ?? "", node: announced, log });
  }
  for (const s of slots) log(`process ${s.index + 1} (pid ${s.child?.pid}) ready, probe port ${s.probePort}`);
  if (runningRelease) log(`release ${runningRelease.name} (workerd ${runningRelease.workerd}, Node ${process.versions.node})`);
  if (current.rules) log(`rules ${current.rules} (SIGHUP swaps in a rebuilt bundle, one process at a time)`);
  console.log(`edge node listening on http://${host}:${port} (${count} processes)`);
} catch (e) {
  console.error(`edge node: ${(e as Error).message}`);
  await stop("SIGTERM", 1);
}

/**
 * Starts a self-hosted edge node as deployed (`edge-node/main.ts`, what
 * `npm run node` runs: the wrangler bundle in workerd processes on one
 * socket) on a free loopback port, waits for its "listening" line, and stops
 * it again. Used by the demo, the benchmarks, the load test and the tests.
 * Builds build/node first when it is missing or older than the worker's
 * sources (npm scripts build it anyway; a test run straight from vitest may not).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { buildBundle } from "../edge-node/bundle";
import { BUNDLE_DIR, COMPAT_FILE, ROOT } from "../edge-node/workerd-config";

export interface EdgeNode {
  url: string;
  port: number;
  process: ChildProcess;
  /** The node's workerd processes now, by process number (1-based): pid, and the URL of the process's own probe port. */
  processes(): Map<number, { pid: number; url: string }>;
  /** Everything the node printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface EdgeNodeOptions {
  /** The worker's variables (EDGE_REGION, EDGE_REDIS_URL, PREWARM_TOKEN, ...). */
  vars: Record<string, string>;
  /** @default 2 */
  processes?: number;
  /** @default a free port */
  port?: number;
  /** Another bundle built with `buildBundle` (e.g. the benchmarks' empty worker). @default build/node */
  bundleDir?: string;
  /** DevTools inspector port of the (single) workerd process, for profiling. */
  inspectorPort?: number;
}

/** Whether build/node is missing or older than the worker's sources (the contract's too), package.json (its version), the Wasm module or the node's OpenAPI document, all in the bundle (a test run straight from vitest). */
function bundleOutdated(): boolean {
  const config = path.join(BUNDLE_DIR, COMPAT_FILE);
  if (!existsSync(config)) return true;
  const built = statSync(config).mtimeMs;
  const sources = [path.join(ROOT, "wrangler.toml"), path.join(ROOT, "package.json"), path.join(ROOT, "build/go-stock.wasm"), path.join(ROOT, "docs/openapi/edge-node.json"), ...["worker", "contract"].flatMap((dir) => readdirSync(path.join(ROOT, dir), { recursive: true, encoding: "utf8" }).map((f) => path.join(ROOT, dir, f)))];
  return sources.some((f) => existsSync(f) && statSync(f).mtimeMs > built);
}

const STARTED = /^edge node listening on http:\/\/([^:]+):(\d+) \((\d+) processes\)$/m;
const PROCESS = /process (\d+) \(pid (\d+)\) (?:ready|restarted), probe port (\d+)/g;

/** Builds build/node when it is missing or outdated; leaves a fresh one alone (test files running at once read it). */
export function ensureBundle(): void {
  if (bundleOutdated()) buildBundle(path.join(ROOT, "wrangler.toml"), BUNDLE_DIR);
}

/** The nodes running the project's own bundle, started here and not stopped yet: the tests check their answers against the node's OpenAPI document. */
export const runningNodes = new Set<EdgeNode>();

export async function startEdgeNode(options: EdgeNodeOptions): Promise<EdgeNode> {
  if (!options.bundleDir) ensureBundle();
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    ...options.vars,
    NODE_HOST: "127.0.0.1",
    NODE_PORT: String(options.port ?? 0),
    NODE_PROCESSES: String(options.processes ?? 2),
  };
  if (options.bundleDir) env["EDGE_NODE_BUNDLE_DIR"] = options.bundleDir;
  if (options.inspectorPort) env["EDGE_NODE_INSPECTOR_PORT"] = String(options.inspectorPort);
  // process.execPath is the Node running this script: the project's Node 22 under npm scripts.
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/main.ts")], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 60_000;
  let port = 0;
  for (;;) {
    const m = STARTED.exec(log);
    if (m) {
      port = Number(m[2]);
      break;
    }
    if (child.exitCode !== null) throw new Error(`edge node exited with code ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edge node did not start within 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const node: EdgeNode = {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    processes: () => new Map([...log.matchAll(PROCESS)].map((m) => [Number(m[1]), { pid: Number(m[2]), url: `http://127.0.0.1:${m[3]}` }])),
    log: () => log,
    stop: async () => {
      runningNodes.delete(node);
      await stop();
    },
  };
  if (!options.bundleDir) runningNodes.add(node);
  return node;
}

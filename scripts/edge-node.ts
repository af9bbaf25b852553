/**
 * Runs the edge worker in workerd through `wrangler dev` (local mode) on a
 * free loopback port, waits until /healthz answers, and stops it again.
 * Used by the demo, the benchmarks and the scheduler's tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "./redis-server";

export interface EdgeNode {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface EdgeNodeOptions {
  /** wrangler vars (EDGE_REGION, EDGE_REDIS_URL, PREWARM_TOKEN, ...). */
  vars: Record<string, string>;
  port?: number;
  /** Project root holding wrangler.toml. */
  root?: string;
  /** Another wrangler config (e.g. the benchmarks' empty worker), relative to the root. */
  config?: string;
  /** DevTools inspector port of the worker (for profiling); a free one by default. */
  inspectorPort?: number;
}

const ROOT = path.resolve(import.meta.dirname, "..");

/**
 * Where a node's throw-away local state goes (wrangler dev persists its Cache
 * API there): memory (tmpfs) where the machine has it. Miniflare's cache
 * writes a file per entry; on tmpfs a cache.put costs about a third less.
 */
const STATE_ROOT = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

export async function startEdgeNode(options: EdgeNodeOptions): Promise<EdgeNode> {
  const port = options.port ?? (await freePort());
  const root = options.root ?? ROOT;
  const persistDir = mkdtempSync(path.join(STATE_ROOT, "edge-prewarm-"));
  const args = [
    path.join(root, "node_modules/wrangler/bin/wrangler.js"),
    "dev",
    "--ip", "127.0.0.1",
    "--port", String(port),
    "--inspector-port", String(options.inspectorPort ?? (await freePort())),
    "--persist-to", persistDir,
    "--show-interactive-dev-session=false",
    "--log-level", "warn",
  ];
  if (options.config) args.push("--config", options.config);
  for (const [k, v] of Object.entries(options.vars)) args.push("--var", `${k}:${v}`);
  // process.execPath is the Node running this script: the project's Node 22 under npm scripts.
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        rmSync(persistDir, { recursive: true, force: true });
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", done);
      // wrangler starts workerd as its own child: signal the whole process group.
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        child.kill("SIGTERM");
      }
    });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}:\n${log}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200 || res.status === 503) {
        await res.body?.cancel();
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edge node on port ${port} did not answer /healthz within 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, port, process: child, stop };
}

/**
 * Starts a private, throw-away redis-server on a free loopback port (no
 * persistence) for tests, the demo and benchmarks, and stops it again.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { createServer } from "node:net";

export interface RedisProcess {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === "object" ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export async function startRedis(options: { port?: number; bin?: string; args?: string[] } = {}): Promise<RedisProcess> {
  const port = options.port ?? (await freePort());
  const bin = options.bin ?? process.env["REDIS_SERVER"] ?? "redis-server";
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", ...(options.args ?? [])], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: Error): void => {
      clearInterval(check);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => settle(new Error(`redis-server did not start on port ${port} within 10 s:\n${log}`)), 10_000);
    const check = setInterval(() => log.includes("Ready to accept connections") && settle(), 20);
    child.on("error", (e) => settle(new Error(`cannot start ${bin} (${e.message}); install it, e.g. apt-get install -y redis-server`)));
    child.on("exit", (code) => settle(new Error(`redis-server exited with code ${code}:\n${log}`)));
  });
  child.removeAllListeners("exit");
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface RedisCluster {
  /** Any node of the cluster (a cluster client finds the others). */
  url: string;
  nodes: RedisProcess[];
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster of `primaries` nodes on loopback (no replicas, no
 * persistence) and waits until it serves every slot. Needs redis-cli (Debian:
 * redis-tools, which redis-server depends on).
 */
export async function startRedisCluster(primaries = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), "redis-cluster-"));
  const nodes: RedisProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < primaries; i++) {
      const port = await freePort();
      nodes.push(await startRedis({ port, args: ["--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`), "--dir", dir] }));
    }
    const cli = process.env["REDIS_CLI"] ?? "redis-cli";
    await new Promise<void>((resolve, reject) => {
      const child = spawn(cli, ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      child.on("error", (e) => reject(new Error(`cannot run ${cli} (${e.message}); install redis-tools`)));
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited ${code}:\n${out}`))));
    });
    // Every node must see every slot assigned before a client may rely on it.
    const deadline = Date.now() + 20_000;
    for (const n of nodes) {
      const c = new Redis(n.url);
      try {
        for (;;) {
          if (/cluster_state:ok/.test(String(await c.cluster("INFO")))) break;
          if (Date.now() > deadline) throw new Error(`the cluster did not reach cluster_state:ok on port ${n.port}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        c.disconnect();
      }
    }
    return { url: nodes[0]!.url, nodes, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

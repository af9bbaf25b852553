/**
 * Starts a private, throw-away redis-server on a free loopback port (no
 * persistence) for tests, the demo and benchmarks, and stops it again.
 */
import { spawn, type ChildProcess } from "node:child_process";
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

export async function startRedis(options: { port?: number; bin?: string } = {}): Promise<RedisProcess> {
  const port = options.port ?? (await freePort());
  const bin = options.bin ?? process.env["REDIS_SERVER"] ?? "redis-server";
  const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"], {
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

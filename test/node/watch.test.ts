/**
 * `npm run node:watch` (development, issue 22): a change to a Go source of
 * the rules is served by the running node without a restart by hand: the
 * module is rebuilt, put in the bundle and rolled in (SIGHUP). Run on copies
 * of go-stock/ and of the bundle, so the repository is not touched.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_DIR, ROOT } from "../../edge-node/workerd-config";
import { startRedis, type RedisProcess } from "../../scripts/redis-server";
import { readSku, seedRecords } from "./edge-node-client";
import Redis from "ioredis";

let dir: string;
let redis: RedisProcess;
let client: Redis;
let watcher: ChildProcess;
let log = "";
let url = "";

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "node-watch-"));
  cpSync(path.join(ROOT, "go-stock"), path.join(dir, "go-stock"), { recursive: true });
  cpSync(BUNDLE_DIR, path.join(dir, "bundle"), { recursive: true });
  redis = await startRedis();
  client = new Redis(redis.url);
  watcher = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/watch.ts")], {
    cwd: ROOT,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "", EDGE_REGION: "cn-east", EDGE_REDIS_URL: redis.url, PREWARM_TOKEN: "watch-dev", NODE_HOST: "127.0.0.1", NODE_PORT: "0", NODE_PROCESSES: "2", EDGE_NODE_BUNDLE_DIR: path.join(dir, "bundle"), GO_STOCK_DIR: path.join(dir, "go-stock"), NODE_WATCH_CHANGES: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  watcher.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  watcher.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 300 && !url; i++) {
    url = /edge node listening on (http:\/\/[^ ]+) /.exec(log)?.[1] ?? "";
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!url) throw new Error(`the node did not start:\n${log}`);
}, 60_000);

afterAll(async () => {
  if (watcher && watcher.exitCode === null) {
    const exited = new Promise((r) => watcher.once("exit", r));
    watcher.kill("SIGTERM");
    await exited;
  }
  client?.disconnect();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("npm run node:watch", () => {
  it("serves a changed rule soon after the Go source is saved, with the new rules version", async () => {
    const sku = `watch-dev-${process.pid}`;
    await seedRecords(client, sku, 1_000); // 50 units: in stock
    const body = async (): Promise<{ status?: string; rules: string | null }> => {
      const res = await fetch(`${url}/v1/skus/${sku}`);
      const json = (await res.json()) as { stock?: { status: string } };
      return { status: json.stock?.status, rules: res.headers.get("X-Rules-Version") };
    };
    const before = await body();
    expect(before.status).toBe("in_stock");
    expect((await readSku(url, sku)).cache).toBe("HIT");

    // One rule changed in the watched copy: "low stock" up to threshold + 100 units.
    const file = path.join(dir, "go-stock/rules/stock.go");
    const source = readFileSync(file, "utf8");
    expect(source).toContain("case available <= s.LowStockThreshold:");
    const saved = performance.now();
    writeFileSync(file, source.replace("case available <= s.LowStockThreshold:", "case available <= s.LowStockThreshold+100:"));
    let after = before;
    while (performance.now() - saved < 45_000 && (after.rules === before.rules || after.status !== "low_stock")) {
      await new Promise((r) => setTimeout(r, 25));
      after = await body();
    }
    const ms = Math.round(performance.now() - saved);
    console.log(`node:watch: edit → first read with the new rules: ${ms} ms (${/built in \d+ ms/.exec(log)?.[0] ?? "?"})`);
    expect(after, log).toMatchObject({ status: "low_stock" });
    expect(after.rules).not.toBe(before.rules);
  }, 60_000);
});

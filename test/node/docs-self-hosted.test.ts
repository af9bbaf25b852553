/**
 * The self-hosted steps of docs/operations.md (runbook 9), run as written: the variables it exports,
 * `npm run node` with the NODE_* settings it gives, the health check it
 * shows. Two things are changed, and only these: EDGE_REDIS_URL points at this
 * test's own Redis and NODE_PORT at a free port (8787 may be taken here).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freePort, startRedis, type RedisProcess } from "../../scripts/redis-server";

const ROOT = path.resolve(import.meta.dirname, "../..");
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** The shell block between the self-hosted markers of docs/operations.md. */
function steps(): string[] {
  const doc = readFileSync(path.join(ROOT, "docs/operations.md"), "utf8");
  const m = /<!-- self-hosted steps[^>]*-->\s*```sh\n([\s\S]*?)```\s*<!-- end of self-hosted steps -->/.exec(doc);
  if (!m) throw new Error("docs/operations.md has no self-hosted steps block");
  return m[1]!.trim().split("\n");
}

/** NAME=value pairs of a shell line (`export A=1 B=2` or `A=1 B=2 command`). */
function assignments(line: string): Record<string, string> {
  return Object.fromEntries([...line.matchAll(/\b([A-Z][A-Z0-9_]*)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

it("the self-hosted steps of docs/operations.md start a node that answers, and SIGTERM stops it", async () => {
  const lines = steps();
  expect(lines[0]).toBe("npm ci"); // done by whoever runs the tests
  const exported = assignments(lines.find((l) => l.startsWith("export "))!);
  const run = lines.find((l) => l.endsWith("npm run node"))!;
  const health = lines.find((l) => l.startsWith("curl "))!;
  expect(Object.keys(exported)).toEqual(["EDGE_REGION", "EDGE_REDIS_URL", "PREWARM_TOKEN"]);
  const port = await freePort();
  const env = { ...process.env, ...exported, ...assignments(run), EDGE_REDIS_URL: redis.url, NODE_PORT: String(port) };
  const npm = spawn("npm", ["run", "node"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  npm.stdout.on("data", (d: Buffer) => (log += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
  try {
    for (let i = 0; i < 1200 && !log.includes("edge node listening on"); i++) await new Promise((r) => setTimeout(r, 100));
    expect(log).toContain(`edge node listening on http://127.0.0.1:${port} (${assignments(run)["NODE_PROCESSES"]} processes)`);
    const url = /curl -s (\S+)/.exec(health)![1]!.replace(":8787", `:${port}`);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", region: exported["EDGE_REGION"], store: "redis" });
    const warm = await fetch(`http://127.0.0.1:${port}/v1/prewarm`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${exported["PREWARM_TOKEN"]}` },
      body: JSON.stringify({ skus: ["readme-sku"] }),
    });
    expect(warm.status).toBe(200);
  } finally {
    npm.kill("SIGTERM");
    await exited;
  }
  expect(log).toContain("edge node: stopped");
  await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
}, 180_000);

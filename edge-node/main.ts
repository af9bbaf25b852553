/**
 * `npm run node`: one self-hosted edge node in the foreground (SPEC §7).
 *
 * Reads every worker variable (SPEC §6) from the environment, plus NODE_HOST
 * (127.0.0.1), NODE_PORT (8787) and NODE_PROCESSES (the machine's cores);
 * AGGREGATE_STORE defaults to `redis` here (workerd has no Cache API unless
 * one is configured, and a node's processes share its edge Redis). The
 * configuration is checked before anything starts, with the worker's own
 * parser, so a bad value stops the node with a message naming the variable.
 *
 * It opens the node's port once and hands the listening socket to the
 * supervisor (`supervisor.ts`), which runs the workerd processes on it; this
 * process then only forwards signals and exits with the supervisor's code.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";
import path from "node:path";
import { parseConfig, type RawConfig } from "../worker/config";
import { ROOT, bundleDir } from "./workerd-config";

function fail(message: string): never {
  console.error(`edge node: ${message}`);
  process.exit(2);
}

const env = { ...process.env };
env["AGGREGATE_STORE"] ||= "redis";
env["NODE_HOST"] ||= "127.0.0.1";
env["NODE_PORT"] ||= "8787";
env["NODE_PROCESSES"] ||= String(availableParallelism());

const port = Number(env["NODE_PORT"]);
const processes = Number(env["NODE_PROCESSES"]);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`NODE_PORT must be a port number (0 = any free port), got ${JSON.stringify(env["NODE_PORT"])}`);
if (!Number.isInteger(processes) || processes < 1 || processes > 256) fail(`NODE_PROCESSES must be an integer in 1..256, got ${JSON.stringify(env["NODE_PROCESSES"])}`);
try {
  const cfg = parseConfig(env as RawConfig);
  if (cfg.aggregateStore === "cache-api") fail("AGGREGATE_STORE=cache-api needs a Cache API, which a self-hosted node does not have: use redis");
  if (cfg.prewarmToken === "") console.error("edge node: PREWARM_TOKEN is not set: POST /v1/prewarm and /v1/purge refuse every request");
} catch (e) {
  fail((e as Error).message);
}
const configFile = path.join(bundleDir(env), "workerd.capnp");
if (!existsSync(configFile)) fail(`${path.relative(ROOT, configFile)} is missing: run npm run build:node (npm run node does)`);

const server = createServer();
server.on("error", (e) => fail(`cannot listen on ${env["NODE_HOST"]}:${port}: ${e.message}`));
server.listen({ host: env["NODE_HOST"], port, backlog: 1024 }, () => {
  const address = server.address();
  if (address === null || typeof address === "string") fail("no TCP address");
  env["NODE_PORT"] = String(address.port);
  // Synchronously, before this process's event loop could accept a connection:
  // the supervisor gets the socket as descriptor 3, and this process lets go of it.
  // The listening descriptor (Node keeps it on the server's handle; on Unix a plain number).
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  // `node --import tsx`, not the tsx CLI: that runs the script in a grandchild, which would not inherit descriptor 3.
  const supervisor = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "supervisor.ts")], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "inherit", "inherit", fd],
  });
  server.close();
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => supervisor.kill(signal));
  supervisor.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
});

/**
 * `npm run node`: one self-hosted edge node in the foreground (SPEC §7).
 *
 * Reads every worker variable (SPEC §6) from the environment, plus NODE_HOST
 * (127.0.0.1), NODE_PORT (8787), NODE_PROCESSES (the machine's cores) and
 * NODE_WATCH_CHANGES (1: re-warm warm SKUs whose records change), and, to
 * announce itself to the scheduler's node registry, NODE_ANNOUNCE_URL (the
 * ops API), NODE_ANNOUNCE_TOKEN, NODE_NAME and NODE_PUBLIC_URL;
 * AGGREGATE_STORE defaults to `redis` here (workerd has no Cache API unless
 * one is configured, and a node's processes share its edge Redis). The
 * configuration is checked before anything starts, with the worker's own
 * parser, so a bad value stops the node with a message naming the variable.
 *
 * It opens the node's port (one SO_REUSEPORT socket per process) and hands
 * the listening sockets to the supervisor (`supervisor.ts`), which runs the
 * workerd processes on them; this process then only forwards signals and
 * exits with the supervisor's code.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
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
if (env["NODE_ANNOUNCE_URL"]) {
  // Announcing to the scheduler's registry needs the node's name, the URL the scheduler reaches it at, and the registry token.
  for (const v of ["NODE_NAME", "NODE_PUBLIC_URL", "NODE_ANNOUNCE_TOKEN"]) if (!env[v]) fail(`NODE_ANNOUNCE_URL is set, so ${v} must be too`);
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(env["NODE_NAME"]!)) fail(`NODE_NAME must be lowercase letters, digits and dashes (1-63 chars), got ${JSON.stringify(env["NODE_NAME"])}`);
  for (const v of ["NODE_ANNOUNCE_URL", "NODE_PUBLIC_URL"]) if (!/^https?:\/\//.test(env[v]!)) fail(`${v} must be an http(s) URL, got ${JSON.stringify(env[v])}`);
}
if (env["NODE_WATCH_CHANGES"] !== undefined && !["0", "1"].includes(env["NODE_WATCH_CHANGES"])) fail(`NODE_WATCH_CHANGES must be 0 or 1, got ${JSON.stringify(env["NODE_WATCH_CHANGES"])}`);
try {
  const cfg = parseConfig(env as RawConfig);
  if (cfg.aggregateStore === "cache-api") fail("AGGREGATE_STORE=cache-api needs a Cache API, which a self-hosted node does not have: use redis");
  if (cfg.prewarmToken === "") console.error("edge node: PREWARM_TOKEN is not set: POST /v1/prewarm and /v1/purge refuse every request");
} catch (e) {
  fail((e as Error).message);
}
const bundle = path.join(bundleDir(env), "index.js");
if (!existsSync(bundle)) fail(`${path.relative(ROOT, bundle)} is missing: run npm run build:node (npm run node does)`);

/** Listens on host:port with SO_REUSEPORT; resolves once listening. */
function listen(host: string, p: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port: p, backlog: 1024, reusePort: true }, () => resolve(server));
  });
}

/** The listening descriptor of a server (Node keeps it on the server's handle; on Unix a plain number). */
function fdOf(server: Server): number {
  return (server as unknown as { _handle: { fd: number } })._handle.fd;
}

// One listening socket per process, all on the one port (SO_REUSEPORT): the
// kernel spreads new connections evenly over them. (With one shared socket,
// whichever process wakes first accepts a whole burst of connections, and
// keep-alive clients then load one process while the others idle.)
const host = env["NODE_HOST"]!;
const servers: Server[] = [];
try {
  servers.push(await listen(host, port));
  const bound = (servers[0]!.address() as AddressInfo).port;
  while (servers.length < processes) servers.push(await listen(host, bound));
  env["NODE_PORT"] = String(bound);
} catch (e) {
  fail(`cannot listen on ${host}:${port}: ${(e as Error).message}`);
}
// Synchronously, before this process's event loop turns again and could
// accept a connection: the supervisor gets socket i as descriptor 3 + i, and
// this process lets go of them.
// `node --import tsx`, not the tsx CLI: that runs the script in a grandchild, which would not inherit the descriptors.
// A release (`npm run release`) runs this file compiled, beside the compiled supervisor, with no tsx.
const supervisorArgs = import.meta.filename.endsWith(".js") ? [path.join(import.meta.dirname, "supervisor.js")] : ["--import", "tsx", path.join(import.meta.dirname, "supervisor.ts")];
const supervisor = spawn(process.execPath, supervisorArgs, {
  cwd: ROOT,
  env,
  stdio: ["ignore", "inherit", "inherit", ...servers.map(fdOf)],
});
for (const server of servers) server.close();
// SIGHUP: the supervisor swaps in the rebuilt bundle, one process at a time.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => supervisor.kill(signal));
supervisor.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

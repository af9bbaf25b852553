/**
 * The console's test stack: a real scheduler (the engine with its workers and
 * the ops API served over HTTP, as `prewarm serve` runs them) on the stack of
 * test/node/scheduler/stack.ts (a real scheduler Redis, two real self-hosted
 * edge nodes), a node where nothing listens, and headless Chromium
 * (/usr/bin/chromium, Debian's package) driven by puppeteer-core.
 */
import type { AddressInfo } from "node:net";
import type { ServerType } from "@hono/node-server";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { serveOps } from "../openapi-answers"; // the ops API, every answer it gives checked against its OpenAPI document
import type { Engine } from "../../../prewarm-scheduler/runs/engine";
import type { Stack } from "../scheduler/stack";

export const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
export const OPS_TOKEN = "console-ops-token-9f2c";
export const REGISTRY_TOKEN = "console-registry-token-51ab";

export async function launch(): Promise<Browser> {
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}

export async function serve(engine: Engine): Promise<{ server: ServerType; url: string }> {
  const server = await serveOps(engine, 0, "127.0.0.1");
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** The scheduler's config for the console's tests: the two edge nodes, a dead one, the registry open to one URL. */
export async function consoleConfig(stack: Stack, overrides: Parameters<Stack["config"]>[0] = {}) {
  const dead = await stack.deadNode();
  return stack.config({
    nodes: [...stack.edges.map((e) => ({ name: e.name, url: e.node.url, region: e.region })), dead],
    opsToken: OPS_TOKEN,
    registryToken: REGISTRY_TOKEN,
    nodeUrlAllow: [stack.edges[1]!.node.url],
    nodeAbsentAfterMs: 1500,
    retry: { attempts: 1, backoffMs: 50 },
    requestTimeoutMs: 3000,
    ...overrides,
  });
}

export async function signIn(page: Page, base: string, token = OPS_TOKEN): Promise<void> {
  await page.goto(`${base}/`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#token");
  await page.type("#token", token);
  await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }), page.click("#signin")]);
}

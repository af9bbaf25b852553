/**
 * Vitest global setup (runs in Node, outside workerd): the real parts
 * around the worker under test, for the whole run:
 *  - the edge redis-server, which tests can stop and restart through a
 *    loopback control endpoint (workerd cannot spawn processes);
 *  - the reference regional aggregator over HTTP, with its own redis-server;
 *  - a fresh PREWARM_TOKEN and the shared conformance vectors.
 * They reach the worker as bindings and the tests through provide().
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startRegional } from "../../regional/server";
import { startRedis } from "../../scripts/redis-server";
import type {} from "../provided";
import { startControlServer } from "./control-server";

/** The conformance vectors: $CONFORMANCE_FILE, else the contract's file beside the repository, else the copy the Go tests keep (and hold equal to it). */
const sharedVectors = path.resolve(import.meta.dirname, "../../../shared/fixtures/conformance.json");
export const conformancePath = process.env["CONFORMANCE_FILE"] ?? (existsSync(sharedVectors) ? sharedVectors : path.resolve(import.meta.dirname, "../../go-stock/rules/testdata/conformance.json"));

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const edgeRedis = { current: await startRedis() };
  const regionalRedis = await startRedis();
  const regional = await startRegional({ redisUrl: regionalRedis.url });
  const control = await startControlServer(edgeRedis);
  project.provide("redisUrl", edgeRedis.current.url);
  project.provide("regionalUrl", regional.url);
  project.provide("regionalRedisUrl", regionalRedis.url);
  project.provide("controlUrl", control.url);
  project.provide("prewarmToken", randomBytes(16).toString("hex"));
  project.provide("conformance", readFileSync(conformancePath, "utf8"));
  project.provide("rulesVersion", createHash("sha256").update(readFileSync(path.resolve(import.meta.dirname, "../../build/go-stock.wasm"))).digest("hex").slice(0, 12));
  return async () => {
    await control.close();
    await regional.close();
    await regionalRedis.stop();
    await edgeRedis.current.stop();
  };
}

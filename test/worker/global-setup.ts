/**
 * Vitest global setup (runs in Node, outside workerd): a private
 * redis-server on a free port for the whole run, a fresh PREWARM_TOKEN, and
 * the shared conformance vectors, handed to the worker and the tests with
 * provide().
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startRedis } from "../../scripts/redis-server";
import type {} from "../provided";

export const conformancePath = process.env["CONFORMANCE_FILE"] ?? path.resolve(import.meta.dirname, "../../../shared/fixtures/conformance.json");

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide("redisUrl", redis.url);
  project.provide("prewarmToken", randomBytes(16).toString("hex"));
  project.provide("conformance", readFileSync(conformancePath, "utf8"));
  return () => redis.stop();
}

/**
 * The scheduler's configuration (SPEC §6): its Redis, the edge nodes (name,
 * URL, region), the nodes' bearer token, batch size, per-node concurrency and
 * the retry policy. A YAML or JSON file, validated at start-up with errors
 * that name the bad field; `${VAR}` in string values reads the environment so
 * secrets stay out of the file.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isValidRegion } from "../../contract/ids";
import { MAX_BATCH } from "../../contract/prewarm";
import { describeIssues, InvalidFileError } from "./schema-errors";
import { parseUrlPattern } from "./url-allow";

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "must be lowercase letters, digits and dashes (1-63 chars)" });
const region = z.string().refine(isValidRegion, { error: "must be a region name like cn-east" });

/** A `nodeUrlAllow` pattern that cannot be read is a config error naming it, at start-up. */
function checkUrlPattern(pattern: string, ctx: z.RefinementCtx): void {
  try {
    parseUrlPattern(pattern);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
  }
}

export const nodeSchema = z.strictObject({
  name,
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).transform((u) => u.replace(/\/+$/, "")),
  region,
  /** Overrides the config's token for this node. */
  token: z.string().min(1).optional(),
  /** Overrides maxSkusPerSecondPerNode for this node. */
  maxSkusPerSecond: z.int().min(0).optional(),
  /**
   * `cloudflare`: a Cloudflare deployment with Workers KV behind its Cache API, whose warmed keys reach
   * every data centre up to GLOBAL_PROPAGATION_MS after the write (`prewarm check` counts it). @default "self-hosted"
   */
  kind: z.enum(["self-hosted", "cloudflare"]).optional(),
});

export const configSchema = z
  .strictObject({
    /** The scheduler's own Redis (BullMQ job state, runs, schedules). @default "redis://127.0.0.1:6379" */
    redis: z.string().regex(/^rediss?:\/\//, { error: "must be a redis:// or rediss:// URL" }).default("redis://127.0.0.1:6379"),
    /** `redis` is a node of a Redis Cluster: the prefix becomes a hash tag (`{prewarm}`), so multi-key scripts find their keys in one slot. @default false */
    redisCluster: z.boolean().default(false),
    /** Key prefix of every queue and run record, so several deployments can share one Redis. @default "prewarm" */
    prefix: z.string().regex(/^(\{[A-Za-z0-9_-]+\}|[A-Za-z0-9_-]+)$/, { error: "must be letters, digits, - or _ (in {} for a Redis Cluster hash tag)" }).default("prewarm"),
    /** Bearer token of the nodes' POST /v1/prewarm. */
    token: z.string().min(1, { error: "must not be empty (use ${PREWARM_TOKEN} to read it from the environment)" }),
    /** The static fleet; nodes may also join through the registry (`nodeUrlAllow`). */
    nodes: z.array(nodeSchema).default([]),
    /**
     * URL patterns a registry node's URL must match (`prewarm-scheduler/config/url-allow.ts`: scheme and port exact, `*` one
     * host label or part of one): the fleet's token goes only there. None: no node can join. @default []
     */
    nodeUrlAllow: z.array(z.string().superRefine(checkUrlPattern)).default([]),
    /** Bearer token nodes announce themselves with (`POST /v1/nodes/announce`); empty: announcing is off. @default "" */
    registryToken: z.string().default(""),
    /** A registry node that has not announced itself for this long is absent. @default 15000 */
    nodeAbsentAfterMs: z.int().min(100).max(3_600_000).default(15_000),
    /** SKUs per POST /v1/prewarm. @default 1000 */
    batchSize: z.int().min(1).max(MAX_BATCH).default(MAX_BATCH),
    /**
     * Batches in flight per node, over all scheduler processes (a lease per
     * batch in the scheduler's Redis). One 1,000-SKU batch already keeps a
     * node's process busy; two at once on one local workerd made one of them
     * miss its edge Redis deadline (see the README). @default 1
     */
    concurrencyPerNode: z.int().min(1).max(64).default(1),
    /** Batches in flight per scheduler process, over all nodes: its one batch worker's slots. @default 64 */
    concurrency: z.int().min(1).max(1024).default(64),
    /** SKUs per second sent to one node, over all scheduler processes; 0 = no limit. @default 0 */
    maxSkusPerSecondPerNode: z.int().min(0).default(0),
    /** Slowing a node down while it leans on its region. */
    protect: z
      .strictObject({
        /** A batch with more than this share of its warmed SKUs from the regional aggregator slows its node down. @default 0.5 */
        regionalShare: z.number().min(0).max(1).default(0.5),
        /** How much a batch that leaned on the region (or met regional_unavailable) delays its node's next batches. @default 2000 */
        slowdownMs: z.int().min(0).max(600_000).default(2000),
      })
      .prefault({}),
    /** Timeout of one POST /v1/prewarm. @default 10000 */
    requestTimeoutMs: z.int().min(1).max(600_000).default(10_000),
    retry: z
      .strictObject({
        /** Tries per batch, the first included. @default 5 */
        attempts: z.int().min(1).max(50).default(5),
        /** First backoff; it doubles each try, with ±50 % jitter. @default 500 */
        backoffMs: z.int().min(0).max(600_000).default(500),
      })
      .prefault({}),
    /** How long a batch stays locked by a scheduler process that stopped answering before another takes it. @default 30000 */
    lockDurationMs: z.int().min(500).max(600_000).default(30_000),
    /**
     * How many times a batch may be taken back from a scheduler process that stopped answering
     * (its lock expired) before it fails as `stalled`. @default 5
     */
    maxStalledCount: z.int().min(0).max(100).default(5),
    /** How long a command waits for the scheduler's Redis before the CLI gives up naming it, and /healthz answers 503. @default 5000 */
    redisTimeoutMs: z.int().min(100).max(600_000).default(5000),
    /** Bearer token of the ops HTTP API; `prewarm serve` refuses to start without one unless given --no-auth on loopback. @default "" */
    opsToken: z.string().default(""),
    /** What the scheduler keeps in its Redis, so that it stays bounded (see the README for the bytes each costs). */
    retention: z
      .strictObject({
        /** Finished runs kept (their reports, `prewarm list`), the newest. @default 1000 */
        runs: z.int().min(1).max(1_000_000).default(1000),
        /** Nothing of a run (nor any finished job) is kept longer than this many days. @default 7 */
        maxAgeDays: z.number().positive().max(366).default(7),
        /**
         * Finished jobs kept for the dashboard, the newest, per queue and state: completed and failed
         * run jobs (each carries its plan), failed batch jobs. Completed batch jobs are dropped at
         * once: the run store has what they did. @default 100
         */
        jobs: z.int().min(0).max(100_000).default(100),
        /** A node that announced itself and has been silent this many days is dropped from the registry (nodes added by hand stay). @default 7 */
        forgetNodesAfterDays: z.number().positive().max(366).default(7),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.retention.forgetNodesAfterDays * 86_400_000 < c.nodeAbsentAfterMs) {
      ctx.addIssue({ code: "custom", path: ["retention", "forgetNodesAfterDays"], message: `must be at least nodeAbsentAfterMs (${c.nodeAbsentAfterMs} ms): a node is absent before it is forgotten` });
    }
    const seen = new Set<string>();
    c.nodes.forEach((n, i) => {
      if (seen.has(n.name)) ctx.addIssue({ code: "custom", path: ["nodes", i, "name"], message: `duplicate node name ${JSON.stringify(n.name)}` });
      seen.add(n.name);
    });
  });

export type SchedulerConfig = z.output<typeof configSchema>;
export type EdgeNodeConfig = z.output<typeof nodeSchema>;
export type SchedulerConfigInput = z.input<typeof configSchema>;

/** A Redis URL as it may be shown: its host, port and database, never a password. */
export function describeRedis(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "" || u.username !== "") {
      u.username = u.username === "" ? "" : "***";
      u.password = u.password === "" ? "" : "***";
    }
    return u.toString();
  } catch {
    return "(an invalid Redis URL)";
  }
}

/** Replaces `${NAME}` in every string of a parsed document with the environment's value. */
export function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[] = [], missing: string[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, v: string) => {
      const got = env[v];
      if (got === undefined) missing.push(`${path.join(".") || "(top level)"}: environment variable ${v} is not set`);
      return got ?? "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, `[${i}]`], missing));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], missing)]));
  }
  return value;
}

/** Reads a YAML or JSON document (YAML is a superset of JSON), naming the file and line on a syntax error. */
export function readDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InvalidFileError(file, [`cannot read it: ${(e as Error).message}`]);
  }
  try {
    return parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new InvalidFileError(file, [`not valid YAML/JSON: ${(e as Error).message}`]);
  }
}

export function parseConfig(doc: unknown, source = "config", env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  const missing: string[] = [];
  const expanded = expandEnv(doc, env, [], missing);
  if (missing.length > 0) throw new InvalidFileError(source, missing);
  const r = configSchema.safeParse(expanded);
  if (!r.success) throw new InvalidFileError(source, describeIssues(r.error));
  return r.data.redisCluster && !r.data.prefix.startsWith("{") ? { ...r.data, prefix: `{${r.data.prefix}}` } : r.data;
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  return parseConfig(readDocument(file), file, env);
}

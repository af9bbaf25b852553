/**
 * The ops API's answers as zod schemas, for its OpenAPI document. The code
 * builds these answers from the interfaces of the layers below (run store,
 * verify, purges, registry, schedules); each schema is tied to its interface
 * at compile time (`same`), so a field added to one and not the other fails
 * the type check instead of leaving the document behind.
 */
import { z } from "zod";
import type { RunReport, Readiness, ReadinessSummary } from "../runs/run-store";
import type { VerifyReport } from "../fleet/verify";
import type { CheckReport } from "../runs/check";
import type { PurgeReport } from "../fleet/purge";
import type { ListedNode } from "../fleet/node-rules";
import type { RegistryEntry } from "../fleet/registry";
import type { ScheduleEntry } from "../runs/schedules";
import type { HotCollection } from "../fleet/hot-skus";

/**
 * True when A and B are each assignable to the other and have the same keys (assignability
 * alone lets a field, optional or not, be added to an interface and not to its schema: a
 * campaign's `t0` was, and the document went without it).
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? ([Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>] extends [never] ? true : false) : false) : false;
const same = <A, B>(ok: Same<A, B>): Same<A, B> => ok;

const ms = z.int().min(0);
const count = z.int().min(0);
const byCode = z.record(z.string(), count);
const pct = z.number().min(0).max(100);

const readinessSummary = z.strictObject({
  at: ms,
  requiredUntil: ms,
  readyPct: pct,
  met: z.boolean(),
  nodes: z.array(z.strictObject({ name: z.string(), ready: count, skus: count, readyPct: pct, stragglers: byCode })),
});
/** A campaign's readiness check: before, and after the re-warm of its stragglers. */
export const readinessSchema = z.strictObject({ plan: z.string(), before: readinessSummary, after: readinessSummary.nullable(), runId: z.string().nullable() });

const runNode = z.strictObject({
  name: z.string(),
  region: z.string(),
  url: z.string(),
  batches: count,
  settled: count,
  batchesFailed: count,
  skus: count,
  warmed: count,
  fromEdge: count,
  fromRegional: count,
  failed: count,
  superseded: count,
  failedByCode: byCode,
  pacedMs: ms,
  slowed: byCode,
  durationMs: ms,
  p50Ms: ms.nullable(),
  p95Ms: ms.nullable(),
});

const runFields = {
  runId: z.string(),
  plan: z.string(),
  planKey: z.string(),
  trigger: z.string(),
  jobId: z.string(),
  createdAt: ms,
  deadline: ms,
  failureThreshold: z.number().min(0).max(1),
  totalSkus: count,
  batchSize: count,
  status: z.enum(["running", "done", "superseded", "failed"]),
  finishedAt: ms.nullable(),
  reason: z.string().nullable(),
  warmed: count,
  failed: count,
  superseded: count,
  readiness: readinessSchema.optional(),
};

/** GET /v1/runs/{id}: a run's report, per node. */
export const runReportSchema = z.strictObject({ ...runFields, nodes: z.array(runNode) });
/** GET /v1/runs: the newest runs, without their per-node parts. */
export const runListSchema = z.strictObject({ runs: z.array(z.strictObject(runFields)) });
/** GET /v1/runs/{id}/failures: failed SKUs (samples, up to 1,000 per run). */
export const failuresSchema = z.strictObject({ failures: z.array(z.strictObject({ node: z.string(), batch: z.string(), sku: z.string(), code: z.string() })) });
/** 202 of POST /v1/runs and POST /v1/changes. */
export const runStartedSchema = z.strictObject({ runId: z.string(), status: z.string() });

/** POST /v1/verify. */
export const verifyReportSchema = z.strictObject({
  plan: z.string(),
  at: ms,
  requiredUntil: ms,
  nodes: z.array(
    z.strictObject({
      name: z.string(),
      region: z.string(),
      skus: count,
      ready: count,
      readyPct: pct,
      stragglers: byCode,
      samples: z.array(z.strictObject({ sku: z.string(), reason: z.string() })),
      stragglerSkus: z.array(z.string()).optional(),
      rules: z.string(),
      rulesMismatch: z.boolean(),
    }),
  ),
  total: count,
  ready: count,
  readyPct: pct,
  goal: z.number().min(0).max(1),
  rules: z.strictObject({ expected: z.string().nullable(), from: z.enum(["flag", "plan", "majority"]).nullable() }),
  met: z.boolean(),
});

/** POST /v1/check: the dry run of a plan (`prewarm check`). */
export const checkReportSchema = z.strictObject({
  plan: z.string(),
  skus: count,
  nodes: z.array(
    z.strictObject({
      name: z.string(),
      skus: count,
      measuredSkusPerSecond: z.number().min(0).nullable(),
      runsMeasured: count,
      limitSkusPerSecond: z.number().min(0),
      estimateMs: z.number().min(0).nullable(),
      propagationMs: z.number().min(0),
    }),
  ),
  warmMs: z.number().min(0).nullable(),
  allowsWarmMs: z.number().nullable(),
  allowsVerifyMs: z.number().nullable(),
  allowsPassMs: z.number().nullable(),
  ok: z.boolean(),
  problems: z.array(z.string()),
});

/** A fleet purge's record (POST /v1/purge, GET /v1/purges/{id}). */
export const purgeReportSchema = z.strictObject({
  purgeId: z.string(),
  kind: z.literal("purge"),
  by: z.strictObject({ via: z.enum(["cli", "api"]), user: z.string().optional(), host: z.string().optional() }),
  createdAt: ms,
  request: z.strictObject({ region: z.string().optional(), skus: z.array(z.string()).optional(), tags: z.array(z.string()).optional(), soft: z.boolean() }),
  only: z.array(z.string()).optional(),
  nodes: z.array(z.strictObject({ name: z.string(), region: z.string() })),
  ok: z.boolean(),
  confirmed: count,
  pending: count,
  purged: count,
  results: z.array(
    z.strictObject({
      name: z.string(),
      region: z.string(),
      status: z.enum(["purged", "pending", "expired"]),
      purged: count.optional(),
      code: z.string().optional(),
      message: z.string().optional(),
      attempts: count,
      at: ms,
      replayed: z.boolean().optional(),
    }),
  ),
});
export const purgeListSchema = z.strictObject({ purges: z.array(purgeReportSchema) });

const entryFields = {
  name: z.string(),
  url: z.string(),
  region: z.string(),
  processes: z.int().optional(),
  version: z.string().optional(),
  rules: z.string().optional(),
};
/** A registry entry (POST /v1/nodes, POST /v1/nodes/announce). */
export const registryEntrySchema = z.strictObject({ ...entryFields, source: z.enum(["announced", "added"]), lastSeen: ms });
/** GET /v1/nodes. */
export const nodeListSchema = z.strictObject({
  nodes: z.array(
    z.strictObject({
      ...entryFields,
      rules: z.string(),
      source: z.enum(["config", "announced", "added"]),
      state: z.enum(["live", "absent", "refused", "degraded", "unreachable"]),
      error: z.string().optional(),
      lastSeen: ms.nullable(),
    }),
  ),
});

/** A schedule (POST /v1/schedules, GET /v1/schedules). */
export const scheduleEntrySchema = z.strictObject({
  plan: z.string(),
  kind: z.enum(["cron", "campaign"]),
  cron: z.string().optional(),
  tz: z.string().optional(),
  fireTimes: z.array(ms).optional(),
  t0: ms.optional(),
  verifyAt: ms.optional(),
  readiness: readinessSchema.nullable().optional(),
  registeredAt: ms,
  next: ms.nullable(),
});
export const scheduleListSchema = z.strictObject({ schedules: z.array(scheduleEntrySchema) });

/** POST /v1/hot: what a collection of the nodes' hottest SKUs found, per node. */
export const hotCollectionSchema = z.strictObject({
  key: z.string(),
  skus: count,
  nodes: z.array(z.strictObject({ name: z.string(), skus: count, error: z.string().optional() })),
});
/** GET /v1/hot: the hottest SKUs of a collection, hottest first, with their reads over the fleet. */
export const hotListSchema = z.strictObject({ key: z.string(), skus: z.array(z.strictObject({ sku: z.string(), reads: z.number().min(0) })) });
export type HotList = z.output<typeof hotListSchema>;

/** GET /healthz of the ops API (no token): whether the scheduler's Redis answers. */
export const opsHealthSchema = z.strictObject({ ok: z.boolean(), error: z.string().optional() });

// Each schema is its interface: a change to either alone fails here.
export const TIED = [
  same<z.output<typeof readinessSummary>, ReadinessSummary>(true),
  same<z.output<typeof readinessSchema>, Readiness>(true),
  same<z.output<typeof runReportSchema>, RunReport>(true),
  same<z.output<typeof verifyReportSchema>, VerifyReport>(true),
  same<z.output<typeof checkReportSchema>, CheckReport>(true),
  same<z.output<typeof purgeReportSchema>, PurgeReport>(true),
  same<z.output<typeof nodeListSchema>["nodes"][number], ListedNode>(true),
  same<z.output<typeof registryEntrySchema>, RegistryEntry>(true),
  same<z.output<typeof scheduleEntrySchema>, ScheduleEntry>(true),
  same<z.output<typeof hotCollectionSchema>, HotCollection>(true),
] as const;

/**
 * The ops API (`ops-api.ts`) as an OpenAPI 3.1 document, generated from the
 * zod schemas its routes validate with (plans, purges, nodes, change notices, hot SKUs)
 * and those of its answers (`answers.ts`). Served at GET /openapi.json, and
 * written to docs/openapi/ops-api.json by `npm run openapi`.
 */
import { z } from "zod";
import { buildDocument, type JsonSchema, type OperationSpec, type ParamSpec } from "../../contract/openapi";
import { planSchema } from "../plans/plan";
import { purgeSchema } from "../fleet/purge";
import { entrySchema } from "../fleet/registry";
import { noticeSchema } from "../runs/changes";
import { hotCollectSchema, hotQuerySchema } from "../fleet/hot-skus";
import { version } from "../../package.json";
import {
  failuresSchema,
  hotCollectionSchema,
  hotListSchema,
  readinessSchema,
  nodeListSchema,
  opsHealthSchema,
  purgeListSchema,
  purgeReportSchema,
  registryEntrySchema,
  runListSchema,
  runReportSchema,
  runStartedSchema,
  scheduleEntrySchema,
  scheduleListSchema,
  verifyReportSchema,
  checkReportSchema,
} from "./answers";

/** The ops API's error codes and their statuses. */
export const OPS_ERRORS = {
  bad_request: 400,
  invalid_plan: 400,
  unauthorized: 401,
  not_found: 404,
  payload_too_large: 413,
  internal: 500,
  unavailable: 503,
} as const;
type OpsErrorCode = keyof typeof OPS_ERRORS;

const DESCRIPTIONS: Record<number, string> = {
  400: "bad input: the message names the fields, `details` lists each problem",
  401: "a missing or wrong token",
  404: "no such run, purge, node or schedule",
  413: "the body is over 1 MiB",
  500: "an unexpected error; the scheduler's log has it under the id in the message",
  503: "the scheduler's Redis did not answer in time",
};

/** Every route behind the ops token (when the config has one) can answer these. */
const COMMON: OpsErrorCode[] = ["unauthorized", "internal"];
/** And every /v1 route: its Redis, its body limit. */
const V1: OpsErrorCode[] = [...COMMON, "unavailable", "payload_too_large", "bad_request"];

function errors(...codes: OpsErrorCode[]): OperationSpec["errors"] {
  const out: OperationSpec["errors"] = {};
  for (const code of new Set(codes)) {
    const status = OPS_ERRORS[code];
    const e = (out[status] ??= { codes: [], description: DESCRIPTIONS[status]! });
    (e.codes as string[]).push(code);
  }
  return out;
}

const planBody = { schema: z.strictObject({ plan: planSchema }), contentTypes: ["application/json"], description: "a plan, as in a plan file (durations as `90s`, `15m` or ms; times as ISO 8601 or ms)" };
const limit: ParamSpec = { name: "limit", in: "query", schema: z.string().regex(/^\d+$/), description: "how many, newest first: 1..1000 (default 20)" };
const id = (name: string, what: string): ParamSpec => ({ name, in: "path", schema: z.string(), description: what });
const ops = "opsToken";

export const OPS_OPERATIONS: OperationSpec[] = [
  {
    method: "get",
    path: "/healthz",
    operationId: "healthz",
    summary: "Does the scheduler's Redis answer? (no token; says nothing of where it is)",
    tags: ["operations"],
    responses: { 200: { description: "it answers", schema: opsHealthSchema }, 503: { description: "it does not", schema: opsHealthSchema } },
    errors: errors("internal"),
  },
  {
    method: "post",
    path: "/v1/nodes/announce",
    operationId: "announceNode",
    summary: "A node's heartbeat (its registry token, not the ops token)",
    description: "Off (404) when the config has no registryToken. The node's URL must match the config's nodeUrlAllow.",
    tags: ["nodes"],
    security: "registryToken",
    body: { schema: entrySchema, contentTypes: ["application/json"] },
    responses: { 200: { description: "the registry entry", schema: registryEntrySchema } },
    errors: errors("bad_request", "unauthorized", "not_found", "payload_too_large", "internal", "unavailable"),
  },
  {
    method: "post",
    path: "/v1/runs",
    operationId: "startRun",
    summary: "Run a plan now",
    tags: ["runs"],
    security: ops,
    body: planBody,
    responses: { 202: { description: "the run, started: follow it at `status`", schema: runStartedSchema } },
    errors: errors(...V1, "invalid_plan"),
  },
  {
    method: "get",
    path: "/v1/runs",
    operationId: "listRuns",
    summary: "The newest runs",
    tags: ["runs"],
    security: ops,
    params: [limit],
    responses: { 200: { description: "newest first, without their per-node parts", schema: runListSchema } },
    errors: errors(...V1),
  },
  {
    method: "get",
    path: "/v1/runs/{id}",
    operationId: "getRun",
    summary: "A run's report, per node",
    tags: ["runs"],
    security: ops,
    params: [id("id", "the run id")],
    responses: { 200: { description: "the report", schema: runReportSchema } },
    errors: errors(...V1, "not_found"),
  },
  {
    method: "get",
    path: "/v1/runs/{id}/failures",
    operationId: "getRunFailures",
    summary: "A run's failed SKUs by code (samples, up to 1,000)",
    tags: ["runs"],
    security: ops,
    params: [id("id", "the run id")],
    responses: { 200: { description: "the failed SKUs", schema: failuresSchema } },
    errors: errors(...V1, "not_found"),
  },
  {
    method: "post",
    path: "/v1/verify",
    operationId: "verify",
    summary: "Is every key of a plan warm on every target node? (warms nothing)",
    tags: ["runs"],
    security: ops,
    body: planBody,
    responses: { 200: { description: "readiness per node, stragglers by reason", schema: verifyReportSchema } },
    errors: errors(...V1, "invalid_plan"),
  },
  {
    method: "post",
    path: "/v1/check",
    operationId: "check",
    summary: "Dry run of a plan (`prewarm check`): its SKUs, each node's estimated time from its recent runs, and whether a campaign's lead is long enough (sends nothing to the nodes)",
    tags: ["runs"],
    security: ops,
    body: planBody,
    responses: { 200: { description: "the estimate per node; `ok` false with the problems when the plan cannot be met", schema: checkReportSchema } },
    errors: errors(...V1, "invalid_plan"),
  },
  {
    method: "post",
    path: "/v1/purge",
    operationId: "purge",
    summary: "Purge SKUs and/or tags on every target node",
    description: "Recorded; a node that does not confirm is sent it again until it does.",
    tags: ["purges"],
    security: ops,
    body: { schema: purgeSchema, contentTypes: ["application/json"] },
    responses: {
      200: { description: "every target node confirmed", schema: purgeReportSchema },
      502: {
        description: "not every node confirmed (not_all_purged): the purge's record names them; it is sent to them again",
        schema: z.strictObject({ error: z.strictObject({ code: z.literal("not_all_purged"), message: z.string() }), purge: purgeReportSchema }),
      },
    },
    errors: errors(...V1),
  },
  {
    method: "get",
    path: "/v1/purges",
    operationId: "listPurges",
    summary: "The newest fleet purges",
    tags: ["purges"],
    security: ops,
    params: [limit],
    responses: { 200: { description: "newest first", schema: purgeListSchema } },
    errors: errors(...V1),
  },
  {
    method: "get",
    path: "/v1/purges/{id}",
    operationId: "getPurge",
    summary: "A fleet purge: who, what, each node's result",
    tags: ["purges"],
    security: ops,
    params: [id("id", "the purge id")],
    responses: { 200: { description: "the purge's record", schema: purgeReportSchema } },
    errors: errors(...V1, "not_found"),
  },
  {
    method: "get",
    path: "/v1/nodes",
    operationId: "listNodes",
    summary: "Every node (the config's, then the registry's) with its state and rules version",
    tags: ["nodes"],
    security: ops,
    responses: { 200: { description: "the fleet", schema: nodeListSchema } },
    errors: errors(...V1),
  },
  {
    method: "post",
    path: "/v1/nodes",
    operationId: "addNode",
    summary: "Add a node to the registry by hand (never absent)",
    tags: ["nodes"],
    security: ops,
    body: { schema: entrySchema, contentTypes: ["application/json"] },
    responses: { 201: { description: "the registry entry", schema: registryEntrySchema } },
    errors: errors(...V1),
  },
  {
    method: "delete",
    path: "/v1/nodes/{name}",
    operationId: "removeNode",
    summary: "Remove a registry node",
    tags: ["nodes"],
    security: ops,
    params: [id("name", "the node's name")],
    responses: { 204: { description: "removed" } },
    errors: errors(...V1, "not_found"),
  },
  {
    method: "post",
    path: "/v1/changes",
    operationId: "notifyChanges",
    summary: "Records of these SKUs changed: re-warm them (on the nodes of these regions)",
    description: "Notices are collected for 250 ms and become one run; every notice of the window answers its id.",
    tags: ["runs"],
    security: ops,
    body: { schema: noticeSchema, contentTypes: ["application/json"] },
    responses: { 202: { description: "the run that re-warms them", schema: runStartedSchema } },
    errors: errors(...V1),
  },
  {
    method: "post",
    path: "/v1/hot",
    operationId: "collectHot",
    summary: "Collect the fleet's hottest SKUs into a sorted set of the scheduler's Redis (`prewarm hot`)",
    description:
      "Asks every node for its most-read SKUs (its GET /v1/hot), adds their reads up and replaces the set `key` atomically; a plan's `skus.hot` reads it. A node that does not answer is named with its error and left out; when none answers the set is left as it was. Only keys under `hot:`.",
    tags: ["hot"],
    security: ops,
    body: { schema: hotCollectSchema, contentTypes: ["application/json"] },
    responses: { 200: { description: "how many SKUs were collected, per node", schema: hotCollectionSchema } },
    errors: errors(...V1),
  },
  {
    method: "get",
    path: "/v1/hot",
    operationId: "listHot",
    summary: "The hottest SKUs of the last collection into `key`, hottest first",
    tags: ["hot"],
    security: ops,
    params: [
      { name: "key", in: "query", schema: hotQuerySchema.shape.key, description: "the sorted set (under `hot:`)" },
      { name: "top", in: "query", schema: hotQuerySchema.shape.top, description: "how many" },
    ],
    responses: { 200: { description: "the SKUs with their reads over the fleet (none when nothing was collected into `key`)", schema: hotListSchema } },
    errors: errors(...V1),
  },
  {
    method: "get",
    path: "/v1/schedules",
    operationId: "listSchedules",
    summary: "The registered schedules and campaigns",
    tags: ["schedules"],
    security: ops,
    responses: { 200: { description: "each with its next fire time", schema: scheduleListSchema } },
    errors: errors(...V1),
  },
  {
    method: "post",
    path: "/v1/schedules",
    operationId: "schedule",
    summary: "Schedule a plan (cron or campaign); idempotent",
    tags: ["schedules"],
    security: ops,
    body: planBody,
    responses: { 201: { description: "the schedule", schema: scheduleEntrySchema } },
    errors: errors(...V1, "invalid_plan"),
  },
  {
    method: "delete",
    path: "/v1/schedules/{plan}",
    operationId: "unschedule",
    summary: "Remove a plan's schedule",
    tags: ["schedules"],
    security: ops,
    params: [id("plan", "the plan's name")],
    responses: { 204: { description: "removed" } },
    errors: errors(...V1, "not_found"),
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus text: queues, open runs, readiness",
    tags: ["operations"],
    security: ops,
    responses: { 200: { description: "Prometheus text format", schema: z.string(), contentType: "text/plain" } },
    errors: errors(...COMMON, "unavailable"),
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This document (no token: it holds nothing of the config)",
    tags: ["operations"],
    responses: { 200: { description: "the OpenAPI 3.1 document of the ops API", schema: z.record(z.string(), z.unknown()) } },
    errors: {},
  },
];

export function opsDocument(): JsonSchema {
  return buildDocument({
    title: "edge prewarm: ops API",
    version,
    description:
      "The scheduler's ops API (`prewarm serve`): runs, schedules, readiness, the fleet, purges, change notices and hot SKUs. Every route but /healthz, /openapi.json and /v1/nodes/announce needs the config's opsToken as a bearer token when one is set. Errors are `{\"error\": {\"code\", \"message\", \"details\"?}}`.",
    security: { opsToken: "the config's opsToken", registryToken: "the config's registryToken (node heartbeats only)" },
    operations: OPS_OPERATIONS,
    components: {
      PlanBody: { schema: planBody.schema, io: "input" },
      Purge: { schema: purgeSchema, io: "input" },
      NodeEntry: { schema: entrySchema, io: "input" },
      RunReport: { schema: runReportSchema, io: "output" },
      RunStarted: { schema: runStartedSchema, io: "output" },
      Readiness: { schema: readinessSchema, io: "output" },
      VerifyReport: { schema: verifyReportSchema, io: "output" },
      CheckReport: { schema: checkReportSchema, io: "output" },
      PurgeReport: { schema: purgeReportSchema, io: "output" },
      RegistryEntry: { schema: registryEntrySchema, io: "output" },
      Schedule: { schema: scheduleEntrySchema, io: "output" },
    },
  });
}

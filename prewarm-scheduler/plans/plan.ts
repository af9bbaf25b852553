/**
 * Prewarm plans: files ops write and keep in version control (YAML or JSON).
 * A plan says which SKUs (a list, a file of ids, or the top N of a Redis
 * sorted set of hot SKUs), which edge nodes or regions, the TTL, and when
 * (once; a cron schedule; a flash-sale campaign: warm at T0 − lead, then
 * refresh every `refreshEvery` until T0 + `until`). Validation names the bad
 * field; a SKU file is read when the plan is loaded so a scheduled plan does
 * not depend on the file being present on every scheduler machine.
 */
import { RULES_VERSION_RE } from "../../contract/prewarm";
import { getNextMillis } from "bullmq";
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { isValidRegion, isValidSku } from "../../contract/ids";
import { isValidTag, MAX_REQUEST_TAGS, tagProblem } from "../../contract/tags";
import type { EdgeNodeConfig } from "../config/config";
import { readDocument } from "../config/config";
import { parseDurationMs } from "../config/durations";
import { describeIssues, InvalidFileError } from "../config/schema-errors";

/** Upper bound on the fire times of one campaign, so a typo cannot flood the queue. */
export const MAX_CAMPAIGN_FIRES = 10_000;

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDurationMs(v);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `${what} must be a duration like "30s", "5m", "2h" or a number of seconds, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

/** An ISO-8601 date-time that says its zone (Z or an offset): without one, it would be read in whatever zone the scheduler host is in. */
const ZONED_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

const instant = z.union([z.string(), z.date()]).transform((v, ctx) => {
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  if (!Number.isFinite(ms) || (typeof v === "string" && !ZONED_DATE_TIME.test(v))) {
    ctx.addIssue({ code: "custom", message: `must be an ISO-8601 date-time with a zone, like "2026-11-11T00:00:00+08:00", got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return ms;
});

const skuId = z.string().refine(isValidSku, { error: (i) => `not a SKU id (letters, digits, . _ -; at most 64): ${JSON.stringify(i.input)}` });

/** The most tags a plan may name: a run adds `plan:{name}` to them, and a prewarm request carries at most MAX_REQUEST_TAGS. */
export const MAX_PLAN_TAGS = MAX_REQUEST_TAGS - 1;

const tag = z.string().refine(isValidTag, { error: (i) => tagProblem(i.input) });

/** Exactly one of `keys` must be present in an object (a tagged choice with errors that keep their paths). */
function exactlyOne(keys: readonly string[]) {
  return (v: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    const present = keys.filter((k) => v[k] !== undefined);
    if (present.length !== 1) ctx.addIssue({ code: "custom", message: `must have exactly one of ${keys.join(", ")}${present.length > 1 ? `, got ${present.join(" and ")}` : ""}` });
  };
}

const skusSchema = z
  .strictObject({
    list: z.array(skuId).min(1, { error: "must list at least one SKU" }).optional(),
    /** A text file, one SKU id per line (# comments), relative to the plan. */
    file: z.string().min(1).optional(),
    hot: z
      .strictObject({
        /** Sorted set of hot SKUs (member = SKU id, score = popularity). */
        key: z.string().min(1),
        top: z.int().min(1).max(10_000_000),
        /** Redis holding the set; default: the scheduler's own Redis. */
        redis: z.string().regex(/^rediss?:\/\//, { error: "must be a redis:// URL" }).optional(),
      })
      .optional(),
  })
  .superRefine(exactlyOne(["list", "file", "hot"]));

const targetsSchema = z
  .preprocess(
    (v) => (v === undefined || v === "all" ? { all: true } : v),
    z
      .strictObject({
        all: z.literal(true).optional(),
        nodes: z.array(z.string().min(1)).min(1).optional(),
        regions: z.array(z.string().refine(isValidRegion, { error: "not a region name" })).min(1).optional(),
      }, { error: 'must be "all", {nodes: [names]} or {regions: [names]}' })
      .superRefine(exactlyOne(["all", "nodes", "regions"])),
  );

const campaignSchema = z
  .strictObject({
    /** The flash sale's start. */
    t0: instant,
    /** Warm this long before T0. */
    lead: duration("lead"),
    /** Then warm again at this interval... */
    refreshEvery: duration("refreshEvery"),
    /** ...until this long after T0. */
    until: duration("until"),
    /** Verify every node this long before T0, re-warm the stragglers and verify again; the readiness goes into that run. */
    verifyBefore: duration("verifyBefore").optional(),
  })
  .superRefine((c, ctx) => {
    if (c.verifyBefore !== undefined && c.verifyBefore >= c.lead) ctx.addIssue({ code: "custom", path: ["verifyBefore"], message: `must be shorter than lead (${c.lead / 1000} s): the keys are warmed first` });
    if (c.refreshEvery < 1000) ctx.addIssue({ code: "custom", path: ["refreshEvery"], message: "must be at least 1s" });
    else if ((c.lead + c.until) / c.refreshEvery + 1 > MAX_CAMPAIGN_FIRES) {
      ctx.addIssue({ code: "custom", path: ["refreshEvery"], message: `gives more than ${MAX_CAMPAIGN_FIRES} runs between T0 − lead and T0 + until` });
    }
  });

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const scheduleSchema = z.preprocess(
  (v) => (v === undefined || v === "once" ? { once: true } : v),
  z
    .strictObject({
      once: z.literal(true).optional(),
      cron: z.string().min(1).optional(),
      tz: z
        .string()
        .refine(isTimeZone, { error: (i) => `must be an IANA time zone name, like "Asia/Shanghai", got ${JSON.stringify(i.input)}` })
        .optional(),
      campaign: campaignSchema.optional(),
    }, { error: 'must be "once", {cron: "<pattern>", tz?} or {campaign: {t0, lead, refreshEvery, until}}' })
    .superRefine(exactlyOne(["once", "cron", "campaign"]))
    .superRefine((s, ctx) => {
      if (s.cron === undefined || (s.tz !== undefined && !isTimeZone(s.tz))) return;
      const problem = cronProblem(s.cron, s.tz);
      if (problem !== null) ctx.addIssue({ code: "custom", path: ["cron"], message: problem });
    }),
);

/**
 * Why a cron pattern cannot be scheduled, or null: read by the parser BullMQ
 * schedules it with (its `getNextMillis`), so a plan that loads is one
 * `prewarm schedule` accepts, and a pattern that never fires (Feb 31) is
 * refused too.
 */
export function cronProblem(pattern: string, tz?: string, now = Date.now()): string | null {
  let next: number | undefined;
  try {
    next = getNextMillis(now, { pattern, ...(tz !== undefined ? { tz } : {}) });
  } catch (e) {
    return `not a cron pattern (minute hour day-of-month month day-of-week, optionally seconds first), ${JSON.stringify(pattern)}: ${(e as Error).message}`;
  }
  return next === undefined ? `${JSON.stringify(pattern)} never fires` : null;
}

export const planSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "must be lowercase letters, digits and dashes (1-63 chars)" }),
  skus: skusSchema,
  targets: targetsSchema,
  /** TTL of the warmed aggregates (s); omitted = the node's CACHE_TTL_SECONDS. */
  ttl: z.int().min(1).max(86_400).optional(),
  /** Up to this many seconds are taken off each key's ttl (the same for a SKU each time), so a batch's keys do not all expire in the same second. Needs `ttl`, and must be below it. @default 0 */
  ttlJitter: z.int().min(0).max(86_399).default(0),
  /** Tags (SPEC §9) every run of the plan puts on the aggregates it warms, besides `plan:{name}`, which it always adds; `prewarm purge --tag` takes them back. */
  tags: z.array(tag).max(MAX_PLAN_TAGS, { error: `at most ${MAX_PLAN_TAGS} tags: a run adds plan:{name}, and a prewarm request carries at most ${MAX_REQUEST_TAGS}` }).optional(),
  schedule: scheduleSchema,
  /** A run not finished by then fails its remaining batches with `deadline_exceeded`. @default "10m" */
  deadline: duration("deadline").default(600_000),
  /** `prewarm run` exits non-zero when failed SKUs / all SKUs exceed this. @default 0 */
  failureThreshold: z.number().min(0).max(1).default(0),
  /** `prewarm verify`: what counts as ready. */
  verify: z
    .strictObject({
      /** A key must stay valid this long past T0 (campaigns) or past now (other plans). @default "30s" */
      margin: duration("verify.margin").default(30_000),
      /** `prewarm verify` exits 0 only when ready keys / all keys, over all nodes, reach this. @default 1 */
      readiness: z.number().min(0).max(1).default(1),
      /** The rules version (SPEC §9) every target node must run, or `prewarm verify` reports it `rules_mismatch`; absent: the version most target nodes run. */
      rules: z.string().regex(RULES_VERSION_RE, { error: "must be a rules version: 12 lowercase hex digits (a node's /healthz rules)" }).optional(),
    })
    .prefault({}),
}).superRefine((p, ctx) => {
  if (p.ttlJitter > 0 && (p.ttl === undefined || p.ttlJitter >= p.ttl)) {
    ctx.addIssue({ code: "custom", path: ["ttlJitter"], message: `must be below the plan's ttl${p.ttl === undefined ? " (set ttl)" : ` (${p.ttl} s)`}; got ${p.ttlJitter} s` });
  }
  // Warmed keys would expire between two refreshes: the campaign would leave holes in its own window.
  const c = p.schedule.campaign;
  if (c && p.ttl !== undefined && (p.ttl - p.ttlJitter) * 1000 < c.refreshEvery) {
    ctx.addIssue({ code: "custom", path: ["ttl"], message: `minus ttlJitter must be at least the campaign's refreshEvery (${c.refreshEvery / 1000} s), or keys expire between refreshes; got ${p.ttl - p.ttlJitter} s` });
  }
});

/** A plan as validated; `skus.file` is already read into `list`. */
export type Plan = Omit<z.output<typeof planSchema>, "skus"> & { skus: { list: string[]; hot?: undefined } | { list?: undefined; hot: { key: string; top: number; redis?: string | undefined } } };
export type PlanInput = z.input<typeof planSchema>;
export type Schedule = z.output<typeof scheduleSchema>;

function readSkuFile(file: string, source: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InvalidFileError(source, [`skus.file: cannot read ${file}: ${(e as Error).message}`]);
  }
  const skus: string[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const sku = line.replace(/#.*/, "").trim();
    if (sku === "") return;
    // The file and the line, never the line's text: a plan must not be a way to print a file.
    if (!isValidSku(sku)) problems.push(`skus.file ${file}:${i + 1}: not a SKU id`);
    else skus.push(sku);
  });
  if (problems.length > 0) throw new InvalidFileError(source, problems.slice(0, 20));
  if (skus.length === 0) throw new InvalidFileError(source, [`skus.file: ${file} lists no SKU`]);
  return skus;
}

/**
 * Validates a plan document. `baseDir` resolves a relative `skus.file`; a plan
 * that came over the ops API (`baseDir` "api") may neither read a file on the
 * scheduler host nor name a Redis server: only the operator's files and
 * configuration do.
 */
export function parsePlan(doc: unknown, source = "plan", baseDir: string | "api" = process.cwd()): Plan {
  const r = planSchema.safeParse(doc);
  if (!r.success) throw new InvalidFileError(source, describeIssues(r.error));
  const p = r.data;
  const { list, file, hot } = p.skus;
  if (baseDir === "api") {
    const refused: string[] = [];
    if (file !== undefined) refused.push("skus.file: a plan posted to the ops API may not read files on the scheduler host; send skus.list, or run the plan file with the CLI");
    if (hot?.redis !== undefined) refused.push("skus.hot.redis: a plan posted to the ops API may not name a Redis server; the scheduler reads hot SKUs from its configured Redis");
    if (refused.length > 0) throw new InvalidFileError(source, refused);
  }
  if (file !== undefined && baseDir !== "api") return { ...p, skus: { list: readSkuFile(path.resolve(baseDir, file), source) } };
  return { ...p, skus: hot !== undefined ? { hot } : { list: list! } };
}

export function loadPlan(file: string): Plan {
  return parsePlan(readDocument(file), file, path.dirname(path.resolve(file)));
}

/** The nodes a plan targets, or a precise error when it names nodes or regions the config does not have. */
export function targetNodes(plan: Plan, nodes: readonly EdgeNodeConfig[], source = "plan"): EdgeNodeConfig[] {
  const { nodes: names, regions } = plan.targets;
  if (names) {
    const unknown = names.filter((n) => !nodes.some((c) => c.name === n));
    if (unknown.length > 0) throw new InvalidFileError(source, [`targets.nodes: not in the config: ${unknown.join(", ")} (known: ${nodes.map((n) => n.name).join(", ")})`]);
    return nodes.filter((n) => names.includes(n.name));
  }
  if (!regions) return [...nodes];
  const chosen = nodes.filter((n) => regions.includes(n.region));
  const empty = regions.filter((r) => !nodes.some((n) => n.region === r));
  if (empty.length > 0) throw new InvalidFileError(source, [`targets.regions: no configured node in ${empty.join(", ")}`]);
  return chosen;
}

/** The fire times (ms) of a campaign: T0 − lead, then every refreshEvery, up to and including T0 + until. */
export function campaignFireTimes(c: { t0: number; lead: number; refreshEvery: number; until: number }): number[] {
  const out: number[] = [];
  for (let t = c.t0 - c.lead; t <= c.t0 + c.until && out.length < MAX_CAMPAIGN_FIRES; t += c.refreshEvery) out.push(t);
  return out;
}

/**
 * `prewarm validate <plan...>`: checks plan files offline (no Redis, no
 * node) as `prewarm run` and `prewarm schedule` would load them: the schema
 * and every field's rules, the cron pattern, a campaign's times against now,
 * and, given a config, the node and region names a plan targets. Each
 * problem names its field; a warning names what will happen but is no error.
 */
import { getNextMillis } from "bullmq";
import type { SchedulerConfig } from "../config/config";
import { campaignFireTimes, loadPlan, targetNodes, type Plan } from "./plan";
import { isInvalidFileError } from "../config/schema-errors";

export interface PlanCheck {
  file: string;
  /** The plan's name, once it loaded. */
  plan: string | null;
  ok: boolean;
  /** One per bad field, `field: why`; any makes the plan unusable. */
  problems: string[];
  /** What will happen that ops may not expect (a campaign already under way, its check before T0 missed). */
  warnings: string[];
  kind?: "once" | "cron" | "campaign";
  /** The next time it runs when scheduled now (cron or campaign), ms. */
  next?: number | null;
  /** A campaign's runs still ahead. */
  runs?: number;
}

export interface Validation {
  ok: boolean;
  /** The config the target names were checked against, or null (not checked). */
  config: string | null;
  plans: PlanCheck[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Checks one plan file; `cfg` (with its file name) checks the names it targets. */
export function validatePlanFile(file: string, cfg: SchedulerConfig | null, now = Date.now()): PlanCheck {
  let plan: Plan;
  try {
    plan = loadPlan(file);
  } catch (e) {
    if (!isInvalidFileError(e)) throw e;
    return { file, plan: null, ok: false, problems: [...e.problems], warnings: [] };
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  const check: PlanCheck = { file, plan: plan.name, ok: true, problems, warnings };
  const s = plan.schedule;
  if (s.cron !== undefined) {
    Object.assign(check, { kind: "cron", next: getNextMillis(now, { pattern: s.cron, ...(s.tz !== undefined ? { tz: s.tz } : {}) }) ?? null });
  } else if (s.campaign !== undefined) {
    const c = s.campaign;
    // As `prewarm schedule` counts them: a fire time up to a second old still runs.
    const ahead = campaignFireTimes(c).filter((t) => t > now - 1000);
    Object.assign(check, { kind: "campaign", next: ahead[0] ?? null, runs: ahead.length });
    if (ahead.length === 0) {
      problems.push(`schedule.campaign.t0: T0 ${iso(c.t0)} has passed, and so has T0 + until (${iso(c.t0 + c.until)}): every run of the campaign is in the past (set t0 to the sale's start)`);
    } else if (c.t0 <= now) {
      warnings.push(`schedule.campaign.t0: T0 ${iso(c.t0)} has passed: only the ${ahead.length} refreshes up to T0 + until (${iso(c.t0 + c.until)}) are left`);
    } else if (c.t0 - c.lead < now - 1000) {
      warnings.push(`schedule.campaign.lead: T0 − lead (${iso(c.t0 - c.lead)}) has passed: scheduled now, the first warm is the next refresh, ${iso(ahead[0]!)}`);
    }
    if (ahead.length > 0 && c.verifyBefore !== undefined && c.t0 - c.verifyBefore <= now - 1000) {
      warnings.push(`schedule.campaign.verifyBefore: the check before T0 (T0 − verifyBefore, ${iso(c.t0 - c.verifyBefore)}) has passed: it will not run`);
    }
  } else check.kind = "once";
  if (cfg !== null) {
    try {
      if (targetNodes(plan, cfg.nodes, file).length === 0 && cfg.nodeUrlAllow.length === 0) problems.push("targets: the config has no node, and no node can join (nodeUrlAllow is empty)");
    } catch (e) {
      if (!isInvalidFileError(e)) throw e;
      // Nodes may also join through the registry when the config lets them: a name the config lacks may be one of theirs.
      if (cfg.nodeUrlAllow.length > 0) warnings.push(...e.problems.map((p) => `${p}; a registry node may have it when the plan runs`));
      else problems.push(...e.problems);
    }
  }
  check.ok = problems.length === 0;
  return check;
}

export function validatePlans(files: readonly string[], cfg: { file: string; config: SchedulerConfig } | null, now = Date.now()): Validation {
  const plans = files.map((f) => validatePlanFile(f, cfg?.config ?? null, now));
  return { ok: plans.every((p) => p.ok), config: cfg?.file ?? null, plans };
}

export function formatValidation(v: Validation): string {
  const lines = v.plans.flatMap((p) => {
    const what =
      p.kind === "campaign" ? `campaign, ${p.runs} runs ahead${p.next ? ` from ${iso(p.next)}` : ""}` : p.kind === "cron" ? `cron, next ${p.next ? iso(p.next) : "-"}` : p.kind === "once" ? "run with prewarm run" : "";
    return [
      p.ok ? `${p.file}: OK (${p.plan}: ${what})` : `${p.file}: ${p.problems.length} ${p.problems.length === 1 ? "error" : "errors"}`,
      ...p.problems.map((x) => `  - ${x}`),
      ...p.warnings.map((x) => `  warning: ${x}`),
    ];
  });
  lines.push(v.config === null ? "(no config: the nodes and regions plans target were not checked; give one with -c)" : `(nodes and regions checked against ${v.config})`);
  return lines.join("\n");
}

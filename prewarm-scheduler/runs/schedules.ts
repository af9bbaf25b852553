/**
 * Registering plans to run on a schedule. Both kinds are idempotent, so any
 * number of scheduler processes may register the same plan without
 * duplicating runs (BullMQ's old repeatable jobs could duplicate or lose
 * schedules when several instances registered them):
 * * cron: one BullMQ job scheduler per plan (`upsertJobScheduler`, keyed by
 *   the plan name);
 * * campaign: one delayed run job per fire time (T0 − lead, then every
 *   refreshEvery until T0 + until), each with a job id made of the plan name
 *   and the fire time, so registering twice adds nothing.
 */
import type { Engine } from "./engine";
import { stamp } from "./engine";
import { campaignFireTimes, targetNodes, type Plan } from "../plans/plan";
import { InvalidFileError } from "../config/schema-errors";
import type { Readiness } from "./run-store";

export interface ScheduleEntry {
  plan: string;
  kind: "cron" | "campaign";
  /** The cron pattern, or the campaign's fire times. */
  cron?: string;
  tz?: string;
  fireTimes?: number[];
  /** A campaign's T0 (ms). */
  t0?: number;
  /** A campaign's readiness check before T0. */
  verifyAt?: number;
  /** Its latest result. */
  readiness?: Readiness | null;
  registeredAt: number;
  /** The next fire time still ahead, if any. */
  next: number | null;
}

const registryKey = (e: Engine): string => `${e.cfg.prefix}:schedules`;
/** hash: plan name -> the plan (JSON) as scheduled, for the console's campaign page. */
const plansKey = (e: Engine): string => `${e.cfg.prefix}:schedules:plans`;
const cronId = (plan: string): string => `plan-${plan}`;
const campaignJobId = (plan: string, t: number): string => `campaign-${plan}-${t}`;
const verifyJobId = (plan: string, t: number): string => `campaign-verify-${plan}-${t}`;

export async function schedulePlan(engine: Engine, plan: Plan, now = Date.now()): Promise<ScheduleEntry> {
  targetNodes(plan, await engine.fleet());
  const s = plan.schedule;
  if (s.once) throw new InvalidFileError(plan.name, ['schedule: is "once"; use `prewarm run` for it, or give {cron} or {campaign}']);
  // A plan re-registered with other times replaces its old schedule, but only
  // once the new one is known to be good: a bad update leaves the working one.
  let entry: ScheduleEntry;
  if (s.cron !== undefined) {
    const old = await engine.redis.hget(registryKey(engine), plan.name);
    try {
      // An upsert under the plan's id replaces a cron schedule in place, and changes nothing when the pattern is bad.
      await engine.runs.upsertJobScheduler(cronId(plan.name), { pattern: s.cron, ...(s.tz ? { tz: s.tz } : {}) }, { name: "run", data: { plan, trigger: "cron" }, opts: { removeOnComplete: engine.kept, removeOnFail: engine.kept } });
      entry = { plan: plan.name, kind: "cron", cron: s.cron, ...(s.tz ? { tz: s.tz } : {}), registeredAt: now, next: (await engine.runs.getJobScheduler(cronId(plan.name)))?.next ?? null };
    } catch (e) {
      throw new InvalidFileError(plan.name, [`schedule.cron: ${(e as Error).message}`]);
    }
    if (old !== null && (JSON.parse(old) as ScheduleEntry).kind === "campaign") await removeCampaignJobs(engine, JSON.parse(old) as ScheduleEntry);
  } else {
    const fires = campaignFireTimes(s.campaign!).filter((t) => t > now - 1000);
    if (fires.length === 0) throw new InvalidFileError(plan.name, ["schedule.campaign: every fire time (T0 − lead .. T0 + until) is in the past"]);
    await unschedulePlan(engine, plan.name);
    await engine.runs.addBulk(
      fires.map((t) => ({
        name: "run",
        data: { plan, runId: `${plan.name}-${stamp(t)}`, trigger: "campaign" },
        opts: { jobId: campaignJobId(plan.name, t), timestamp: now, delay: Math.max(0, t - now), attempts: 3, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: engine.kept, removeOnFail: engine.kept },
      })),
    );
    const c = s.campaign!;
    const verifyAt = c.verifyBefore !== undefined ? c.t0 - c.verifyBefore : undefined;
    if (verifyAt !== undefined && verifyAt > now - 1000) {
      await engine.runs.add("verify", { plan, trigger: "verify" }, { jobId: verifyJobId(plan.name, verifyAt), timestamp: now, delay: Math.max(0, verifyAt - now), attempts: 1, removeOnComplete: engine.kept, removeOnFail: engine.kept });
    }
    entry = { plan: plan.name, kind: "campaign", t0: c.t0, fireTimes: fires, ...(verifyAt !== undefined ? { verifyAt } : {}), registeredAt: now, next: fires[0] ?? null };
  }
  await engine.redis.hset(registryKey(engine), plan.name, JSON.stringify(entry));
  await engine.redis.hset(plansKey(engine), plan.name, JSON.stringify(plan));
  return entry;
}

/** Removes a plan's schedule; returns whether there was one. Runs already started go on. */
export async function unschedulePlan(engine: Engine, planName: string): Promise<boolean> {
  const raw = await engine.redis.hget(registryKey(engine), planName);
  const removedCron = await engine.runs.removeJobScheduler(cronId(planName));
  if (raw !== null) {
    await removeCampaignJobs(engine, JSON.parse(raw) as ScheduleEntry);
    await engine.redis.hdel(registryKey(engine), planName);
  }
  await engine.redis.hdel(plansKey(engine), planName);
  return raw !== null || removedCron;
}

/** Removes a campaign's runs that have not fired yet. */
async function removeCampaignJobs(engine: Engine, entry: ScheduleEntry): Promise<void> {
  const ids = [...(entry.fireTimes ?? []).map((t) => campaignJobId(entry.plan, t)), ...(entry.verifyAt !== undefined ? [verifyJobId(entry.plan, entry.verifyAt)] : [])];
  for (const id of ids) {
    const job = await engine.runs.getJob(id);
    if (job && (await job.isDelayed())) await job.remove();
  }
}

export async function listSchedules(engine: Engine, now = Date.now()): Promise<ScheduleEntry[]> {
  const all = await engine.redis.hgetall(registryKey(engine));
  const out: ScheduleEntry[] = [];
  for (const raw of Object.values(all)) {
    const e = JSON.parse(raw) as ScheduleEntry;
    if (e.kind === "cron") {
      const js = await engine.runs.getJobScheduler(cronId(e.plan));
      e.next = js?.next ?? null;
    } else {
      e.next = e.fireTimes?.find((t) => t >= now) ?? null;
      e.readiness = await engine.store.readiness(e.plan);
    }
    out.push(e);
  }
  return out.sort((a, b) => a.plan.localeCompare(b.plan));
}

/** The plan a schedule was registered with, or null (none, or registered before plans were kept). */
export async function scheduledPlan(engine: Engine, planName: string): Promise<Plan | null> {
  const raw = await engine.redis.hget(plansKey(engine), planName);
  return raw === null ? null : (JSON.parse(raw) as Plan);
}

/**
 * `prewarm check <plan>`: a dry run. Resolves the plan's SKUs, estimates each
 * target node's time to warm them from its measured throughput (the median
 * over its recent runs in the run store, bounded by its SKUs/s limit), and,
 * for a campaign, refuses a `lead` too short to warm (and, with
 * `verifyBefore`, to verify and re-warm the stragglers) before T0, and a pass
 * longer than `refreshEvery` (each refresh would supersede the pass before
 * it ends: the keys would be warmed less often than the plan says). A
 * Cloudflare node (`kind: cloudflare`) must also leave Workers KV its
 * propagation (GLOBAL_PROPAGATION_MS) before T0: its keys are ready in every
 * data centre only that long after they were warmed. Sends nothing to the
 * nodes.
 */
import type { SchedulerConfig } from "../config/config";
import { GLOBAL_PROPAGATION_MS } from "../../contract/prewarm";
import { targetNodes, type Plan } from "../plans/plan";
import { percentile, type RunStore } from "./run-store";

/** Recent runs looked at for a node's throughput. */
const HISTORY = 50;

export interface NodeEstimate {
  name: string;
  skus: number;
  /** Median SKUs/s over recent runs (null: no run measured it yet). */
  measuredSkusPerSecond: number | null;
  runsMeasured: number;
  /** Its configured limit (0: none). */
  limitSkusPerSecond: number;
  /** The time to warm the plan's SKUs (ms), or null when nothing bounds it. */
  estimateMs: number | null;
  /** How long after a write its keys take to be ready everywhere (ms): Workers KV's propagation on a Cloudflare node, else 0. */
  propagationMs: number;
}

export interface CheckReport {
  plan: string;
  skus: number;
  nodes: NodeEstimate[];
  /** The slowest node's estimate (ms). */
  warmMs: number | null;
  /** What the campaign allows for warming, for verifying, and for one pass between refreshes (ms); null for other plans. */
  allowsWarmMs: number | null;
  allowsVerifyMs: number | null;
  allowsPassMs: number | null;
  ok: boolean;
  problems: string[];
}

/** Each node's SKUs/s in its recent runs (warmed and failed SKUs over the time from the run's start to its last batch). */
async function measuredThroughput(store: RunStore): Promise<Map<string, number[]>> {
  const rates = new Map<string, number[]>();
  for (const id of await store.list(HISTORY)) {
    const r = await store.report(id);
    if (!r || r.finishedAt === null) continue;
    for (const n of r.nodes) {
      const done = n.warmed + n.failed;
      if (done < 100 || n.durationMs <= 0) continue; // too small to say anything
      rates.set(n.name, [...(rates.get(n.name) ?? []), (done / n.durationMs) * 1000]);
    }
  }
  return rates;
}

export async function checkPlan(cfg: SchedulerConfig, store: RunStore, plan: Plan, skus: readonly string[]): Promise<CheckReport> {
  const rates = await measuredThroughput(store);
  const nodes = targetNodes(plan, cfg.nodes).map((n): NodeEstimate => {
    const measured = rates.get(n.name);
    const m = measured && measured.length > 0 ? percentile([...measured].sort((a, b) => a - b), 50) : null;
    const limit = n.maxSkusPerSecond ?? cfg.maxSkusPerSecondPerNode;
    const bound = [m, limit > 0 ? limit : null].filter((x): x is number => x !== null);
    const propagationMs = n.kind === "cloudflare" ? GLOBAL_PROPAGATION_MS : 0;
    return { name: n.name, skus: skus.length, measuredSkusPerSecond: m, runsMeasured: measured?.length ?? 0, limitSkusPerSecond: limit, estimateMs: bound.length === 0 ? null : (skus.length / Math.min(...bound)) * 1000, propagationMs };
  });
  const known = nodes.flatMap((n) => (n.estimateMs === null ? [] : [n.estimateMs]));
  const warmMs = known.length === 0 ? null : Math.max(...known);
  const problems: string[] = [];
  for (const n of nodes) if (n.estimateMs === null) problems.push(`${n.name}: no measured throughput and no SKUs/s limit: its time cannot be estimated (run the plan once, or a smaller one)`);
  const c = plan.schedule.campaign;
  let allowsWarmMs: number | null = null;
  let allowsVerifyMs: number | null = null;
  let allowsPassMs: number | null = null;
  if (c) {
    allowsWarmMs = c.lead - (c.verifyBefore ?? 0);
    allowsVerifyMs = c.verifyBefore ?? null;
    allowsPassMs = c.refreshEvery;
    for (const n of nodes) {
      // On Cloudflare a key is ready everywhere only once KV has propagated it: warm ≤ T0 − verifyBefore − propagation.
      const spread = n.propagationMs > 0 ? ` + ${(n.propagationMs / 1000).toFixed(0)} s for Workers KV to reach every data centre` : "";
      if (n.estimateMs !== null && n.estimateMs + n.propagationMs > allowsWarmMs) {
        problems.push(`${n.name}: warming ${n.skus} SKUs takes about ${(n.estimateMs / 1000).toFixed(1)} s${spread}, but the campaign allows ${(allowsWarmMs / 1000).toFixed(1)} s (lead${c.verifyBefore ? " − verifyBefore" : ""}): start earlier (a longer lead)`);
      }
      // The check reads every key and re-warms the stragglers: at worst, another full warm (and its propagation).
      if (allowsVerifyMs !== null && n.estimateMs !== null && 2 * n.estimateMs + n.propagationMs > allowsVerifyMs) {
        problems.push(`${n.name}: verifying and re-warming may take up to ${((2 * n.estimateMs) / 1000).toFixed(1)} s${spread}, but verifyBefore allows ${(allowsVerifyMs / 1000).toFixed(1)} s`);
      }
      // A refresh supersedes what the pass before it has not sent: with a longer pass, the next one
      // sends those first, but no key is warmed every refreshEvery (and the ttl counts on it).
      if (n.estimateMs !== null && n.estimateMs > c.refreshEvery) {
        problems.push(`${n.name}: a pass over ${n.skus} SKUs takes about ${(n.estimateMs / 1000).toFixed(1)} s, longer than refreshEvery (${(c.refreshEvery / 1000).toFixed(1)} s): each refresh would leave keys unsent and they would go cold between refreshes: refresh less often, warm fewer SKUs, or raise the node's SKUs/s limit`);
      }
    }
  }
  const refused = problems.some((p) => !p.includes("cannot be estimated"));
  return { plan: plan.name, skus: skus.length, nodes, warmMs, allowsWarmMs, allowsVerifyMs, allowsPassMs, ok: !refused, problems };
}

export function formatCheck(r: CheckReport): string {
  const s = (ms: number | null): string => (ms === null ? "unknown" : `${(ms / 1000).toFixed(1)} s`);
  const lines = [`check ${r.plan}: ${r.skus} SKUs; slowest node ${s(r.warmMs)}` + (r.allowsWarmMs !== null ? `; the campaign allows ${s(r.allowsWarmMs)} to warm` + (r.allowsVerifyMs !== null ? `, ${s(r.allowsVerifyMs)} to verify` : "") + (r.allowsPassMs !== null ? `, ${s(r.allowsPassMs)} a pass` : "") : "") + `: ${r.ok ? "ok" : "REFUSED"}`];
  for (const n of r.nodes) {
    lines.push(`  ${n.name.padEnd(16)} ${n.measuredSkusPerSecond === null ? "no runs measured" : `${Math.round(n.measuredSkusPerSecond)} SKUs/s (median of ${n.runsMeasured} runs)`}${n.limitSkusPerSecond > 0 ? `, limit ${n.limitSkusPerSecond} SKUs/s` : ""}: ${s(n.estimateMs)}${n.propagationMs > 0 ? ` + ${s(n.propagationMs)} to reach every data centre` : ""}`);
  }
  for (const p of r.problems) lines.push(`  ! ${p}`);
  return lines.join("\n");
}

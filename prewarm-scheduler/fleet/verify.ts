/**
 * `prewarm verify`: is every planned key warm on every target node, and will
 * it still be when it matters? Asks each node for the plan's SKUs with
 * `Cache-Control: only-if-cached` (`GET /v1/skus?ids=…`, 100 at a time), so
 * nothing is warmed, read from Redis or asked of the region by the check.
 *
 * A key is ready when the node has it cached and valid until at least:
 *  - a campaign: T0 + margin, or, when a refresh of the campaign comes
 *    before T0, the next refresh + margin (that refresh re-warms it: a plan's
 *    ttl is at least its refreshEvery);
 *  - any other plan: now + margin.
 * Stragglers are counted by reason: `not_cached`, `expires_early` (valid now,
 * not long enough), `stale` (past its validUntil), `soft_purged` (kept stale
 * by a soft purge), `rules_mismatch` (cached by other rules than the node
 * now runs: both are served STALE until recomputed), the node's per-SKU codes
 * (`not_found`, …), or for a whole request `node_unreachable`, `timeout`,
 * `http_<status>`.
 *
 * A node with a global tier (Cloudflare with Workers KV, `scope: global` in
 * its answer) says when each cached copy is seen by every data centre
 * (`globalAt`): a key whose copy is not there yet is `propagating` (warm, not
 * yet everywhere; not re-warmed by a campaign's check, which would only
 * restart its propagation), one whose copy is in the answering data centre
 * only (KV did not take it) is `local_only`.
 *
 * Rules (SPEC §9): each target node's /healthz `rules` is read; a node that
 * runs other rules than expected is `rulesMismatch` and the plan is not met.
 * Expected: `--rules`, else the plan's `verify.rules`, else the version more
 * than half of the target nodes run (none when no version has a majority: a
 * rollout half done has nothing to compare with). Per key, an aggregate
 * cached by rules other than the node runs is a `rules_mismatch` straggler.
 */
import type { EdgeNodeConfig, SchedulerConfig } from "../config/config";
import { targetNodes, type Plan } from "../plans/plan";
import { probeRules } from "./node-rules";

/** SKUs per request: the node's limit for a multi-get. */
const IDS_PER_REQUEST = 100;
/** Requests in flight per node. */
const CONCURRENCY = 4;
/** Straggler samples kept per node. */
const SAMPLES = 20;

export interface NodeReadiness {
  name: string;
  region: string;
  skus: number;
  ready: number;
  readyPct: number;
  /** Stragglers by reason. */
  stragglers: Record<string, number>;
  samples: { sku: string; reason: string }[];
  /** Every straggler but those still propagating, when asked for (`collect`): what a re-warm would help. */
  stragglerSkus?: string[];
  /** The rules version its /healthz shows, or `unknown`. */
  rules: string;
  /** It runs other rules than `VerifyReport.rules.expected` (reported as `rules_mismatch`). */
  rulesMismatch: boolean;
}

export interface VerifyReport {
  plan: string;
  at: number;
  /** Keys must be valid until at least this instant (ms). */
  requiredUntil: number;
  nodes: NodeReadiness[];
  total: number;
  ready: number;
  readyPct: number;
  /** The plan's verify.readiness. */
  goal: number;
  /** The rules version every node must run, and where that came from (none: no check). */
  rules: { expected: string | null; from: "flag" | "plan" | "majority" | null };
  /** Readiness reaches the goal and no node is `rulesMismatch`. */
  met: boolean;
}

/** The version more than half of `versions` are (unknown ones count against), or null. */
function majority(versions: readonly string[]): string | null {
  const counts = new Map<string, number>();
  for (const v of versions) if (v !== "unknown") counts.set(v, (counts.get(v) ?? 0) + 1);
  for (const [v, k] of counts) if (k * 2 > versions.length) return v;
  return null;
}

/** The instant a plan's keys must stay valid until, checked at `now`. */
export function requiredUntil(plan: Plan, now: number): number {
  const margin = plan.verify.margin;
  const c = plan.schedule.campaign;
  if (!c) return now + margin;
  if (now >= c.t0) return now + margin;
  // Refreshes run at t0 − lead + k × refreshEvery: the next one after now, if it comes before T0, re-warms the key.
  const first = c.t0 - c.lead;
  const next = now < first ? first : first + Math.ceil((now - first + 1) / c.refreshEvery) * c.refreshEvery;
  return Math.min(c.t0, next) + margin;
}

interface Aggregate {
  sku: string;
  validUntil: number;
}

/** A node's reason for a STALE look (`stale` in its answer) as a straggler reason. */
const STALE_REASONS = new Map([
  ["expired", "stale"],
  ["purged", "soft_purged"],
  ["rules", "rules_mismatch"],
]);

async function checkChunk(node: EdgeNodeConfig, skus: readonly string[], until: number, now: number, timeoutMs: number): Promise<{ sku: string; reason: string | null }[]> {
  const url = `${node.url}/v1/skus?ids=${skus.map(encodeURIComponent).join(",")}&region=${encodeURIComponent(node.region)}`;
  let body: { aggregates?: Aggregate[]; failed?: { sku: string; code: string }[]; cachedUntil?: Record<string, number>; stale?: Record<string, string>; scope?: unknown; globalAt?: Record<string, number> };
  try {
    const res = await fetch(url, { headers: { "Cache-Control": "only-if-cached" }, signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) {
      await res.body?.cancel();
      return skus.map((sku) => ({ sku, reason: `http_${res.status}` }));
    }
    body = (await res.json()) as typeof body;
  } catch (e) {
    const reason = (e as Error).name === "TimeoutError" ? "timeout" : "node_unreachable";
    return skus.map((sku) => ({ sku, reason }));
  }
  const out = new Map<string, string | null>();
  const cachedUntil = typeof body.cachedUntil === "object" && body.cachedUntil !== null ? body.cachedUntil : {};
  const stale = typeof body.stale === "object" && body.stale !== null ? body.stale : {};
  const global = body.scope === "global";
  const globalAt = typeof body.globalAt === "object" && body.globalAt !== null ? body.globalAt : {};
  for (const a of body.aggregates ?? []) {
    // Answered STALE: the next read recomputes it; not warm. Why, in the node's words (SPEC §9: other rules, a soft purge).
    const why = Object.hasOwn(stale, a.sku) ? stale[a.sku] : undefined;
    if (why !== undefined) {
      out.set(a.sku, STALE_REASONS.get(why) ?? "stale");
      continue;
    }
    // The cached timeline may run past this aggregate's validUntil (a promotion boundary): the node says how far.
    // Own keys only: a SKU may be called `constructor`, and an object inherits one.
    const cached = (Object.hasOwn(cachedUntil, a.sku) ? cachedUntil[a.sku] : undefined) ?? a.validUntil;
    let reason: string | null = cached >= until ? null : cached <= now ? "stale" : "expires_early";
    if (reason === null && global) {
      const at = Object.hasOwn(globalAt, a.sku) ? globalAt[a.sku] : undefined;
      reason = typeof at !== "number" ? "local_only" : at > now ? "propagating" : null;
    }
    out.set(a.sku, reason);
  }
  for (const f of body.failed ?? []) out.set(f.sku, f.code);
  return skus.map((sku) => ({ sku, reason: out.has(sku) ? out.get(sku)! : "bad_answer" }));
}

/** Checks every target node for every SKU; `onProgress(node, checked)` as chunks come back. */
export async function verifyPlan(
  cfg: SchedulerConfig,
  plan: Plan,
  skus: readonly string[],
  o: { now?: number; collect?: boolean; rules?: string; onProgress?: (node: string, checked: number) => void } = {},
): Promise<VerifyReport> {
  const now = o.now ?? Date.now();
  const until = requiredUntil(plan, now);
  const nodes = await Promise.all(
    targetNodes(plan, cfg.nodes).map(async (node): Promise<NodeReadiness> => {
      const rules = probeRules(node.url);
      const r: NodeReadiness = { name: node.name, region: node.region, skus: skus.length, ready: 0, readyPct: 0, stragglers: {}, samples: [], ...(o.collect ? { stragglerSkus: [] } : {}), rules: "unknown", rulesMismatch: false };
      // Counted in a Map: a reason is the node's word (its per-SKU code), and an object has inherited keys.
      const stragglers = new Map<string, number>();
      let next = 0;
      let checked = 0;
      const lane = async (): Promise<void> => {
        for (;;) {
          const start = next;
          next += IDS_PER_REQUEST;
          if (start >= skus.length) return;
          const chunk = skus.slice(start, start + IDS_PER_REQUEST);
          for (const { sku, reason } of await checkChunk(node, chunk, until, now, cfg.requestTimeoutMs)) {
            if (reason === null) r.ready++;
            else {
              stragglers.set(reason, (stragglers.get(reason) ?? 0) + 1);
              if (r.samples.length < SAMPLES) r.samples.push({ sku, reason });
              if (reason !== "propagating") r.stragglerSkus?.push(sku);
            }
          }
          checked += chunk.length;
          o.onProgress?.(node.name, checked);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, lane));
      r.stragglers = Object.fromEntries(stragglers);
      r.readyPct = r.skus === 0 ? 100 : (100 * r.ready) / r.skus;
      r.rules = await rules;
      return r;
    }),
  );
  const given = o.rules ?? plan.verify.rules;
  const expected = given ?? majority(nodes.map((n) => n.rules));
  const from = o.rules !== undefined ? "flag" : plan.verify.rules !== undefined ? "plan" : expected !== null ? "majority" : null;
  for (const n of nodes) n.rulesMismatch = expected !== null && n.rules !== expected;
  const total = nodes.reduce((s, n) => s + n.skus, 0);
  const ready = nodes.reduce((s, n) => s + n.ready, 0);
  const goal = plan.verify.readiness;
  const readyEnough = total === 0 || ready / total >= goal;
  return {
    plan: plan.name,
    at: now,
    requiredUntil: until,
    nodes,
    total,
    ready,
    readyPct: total === 0 ? 100 : (100 * ready) / total,
    goal,
    rules: { expected, from },
    met: readyEnough && !nodes.some((n) => n.rulesMismatch),
  };
}

export function formatVerify(r: VerifyReport): string {
  const lines = [
    `verify ${r.plan}: ${r.readyPct.toFixed(2)} % ready (${r.ready} of ${r.total} keys valid until ${new Date(r.requiredUntil).toISOString()}); goal ${(r.goal * 100).toFixed(2)} %: ${r.met ? "met" : "NOT met"}`,
  ];
  lines.push(r.rules.expected ? `  rules ${r.rules.expected} expected (${r.rules.from === "majority" ? "the version most target nodes run" : `from the ${r.rules.from}`})` : "  rules: no version expected (none given, and no version runs on most target nodes)");
  for (const n of r.nodes) {
    const why = Object.entries(n.stragglers).sort((a, b) => b[1] - a[1]).map(([reason, k]) => `${reason} ${k}`).join(", ");
    const rules = n.rulesMismatch ? `  rules_mismatch: runs ${n.rules}` : `  rules ${n.rules}`;
    lines.push(`  ${n.name.padEnd(16)} ${n.region.padEnd(10)} ${n.readyPct.toFixed(2).padStart(6)} %  ${n.ready}/${n.skus}${rules}${why ? `  stragglers: ${why}` : ""}`);
  }
  return lines.join("\n");
}

/**
 * Campaign refreshes that come before the pass they supersede has ended: each
 * refresh sends first what the one before left unsent, so no SKU is starved,
 * the superseded runs say what they left unsent, and `prewarm check` refuses
 * such a campaign. Real edge nodes, the scheduler's real Redis (or cluster).
 */
import { describe, expect, it } from "vitest";
import { planKey } from "../../prewarm-scheduler/runs/engine";
import { checkPlan } from "../../prewarm-scheduler/runs/check";
import { opsApp } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import { parsePlan, type Plan } from "../../prewarm-scheduler/plans/plan";
import { formatReport } from "../../prewarm-scheduler/cli/report";
import type { RunReport } from "../../prewarm-scheduler/runs/run-store";
import { verifyPlan } from "../../prewarm-scheduler/fleet/verify";
import { until, useStack } from "./scheduler/stack";

const SKUS = 1000;
const suite = useStack(SKUS);
const { engine } = suite;


describe("campaign refreshes with a pass longer than refreshEvery", () => {
  it("each refresh sends first what the one before left unsent: every SKU reaches every node, and the superseded runs report what they left unsent", async () => {
    // 20 batches of 50 per node, and one batch in flight at a time over the whole scheduler, so
    // batches go out in queue order: a refresh starting again at batch 0 would never reach the last ones.
    const cfg = suite.stack.config({ batchSize: 50, concurrency: 1 });
    const e = engine(cfg);
    const p: Plan = parsePlan({ name: "slow-pass", skus: { list: suite.stack.skus }, ttl: 600 });
    const refreshes = 10;
    const runs: string[] = [];
    for (let k = 0; k < refreshes; k++) {
      // The refresh comes while the pass before it has sent only a few batches on each node.
      await e.batches.pause();
      const runId = await e.startRun(p, "campaign");
      const createdAt = (await e.store.meta(runId))!.createdAt;
      await until(async () => Math.min(...(await Promise.all(suite.stack.edges.map((x) => e.store.latest(planKey(p), x.name))))), (t) => t >= createdAt, 20_000);
      runs.push(runId);
      await e.batches.resume();
      await until(() => e.store.report(runId, { latencies: false }), (r) => r!.nodes.every((n) => n.warmed >= 100), 20_000);
    }
    await e.batches.pause();
    await new Promise((r) => setTimeout(r, 300)); // the batch in flight lands

    // Every key was warmed on every node by one refresh or another: none starved.
    const ready = await verifyPlan(cfg, p, suite.stack.skus);
    expect(ready.nodes.map((n) => [n.name, n.ready, n.stragglers])).toEqual(suite.stack.edges.map((x) => [x.name, SKUS, {}]));

    // Each superseded run finished, not as a clean success: what it left unsent is counted, per node,
    // and warmed + unsent covers its SKUs exactly.
    const app = opsApp(e);
    for (const runId of runs.slice(0, -1)) {
      const r = (await until(() => e.store.report(runId), (x) => x?.finishedAt != null, 20_000))!;
      expect(r.status).toBe("superseded");
      for (const n of r.nodes) {
        expect(n.superseded, `${runId} ${n.name}`).toBeGreaterThan(0);
        expect(n.warmed + n.failed + n.superseded, `${runId} ${n.name}`).toBe(SKUS);
      }
      expect(r.superseded).toBe(r.nodes.reduce((s, n) => s + n.superseded, 0));
      expect(formatReport(r)).toContain(`${r.superseded} SKUs were not warmed by this run: a newer run of the plan superseded its unsent batches`);
      const viaApi = (await (await app.request(`/v1/runs/${runId}`)).json()) as RunReport;
      expect([viaApi.status, viaApi.superseded]).toEqual(["superseded", r.superseded]);
    }
  }, 120_000);

  it("prewarm check refuses a campaign whose pass on a node is longer than refreshEvery, naming the node and the times", async () => {
    // At 100 SKUs/s a node needs 10 s for 1,000 SKUs: a refresh every 5 s would supersede every pass.
    const cfg = suite.stack.config({ maxSkusPerSecondPerNode: 100 });
    const e = engine(cfg, false); // sends nothing: no workers
    const campaign = (refreshEvery: string): Plan =>
      parsePlan({ name: "refresh-check", skus: { list: suite.stack.skus }, ttl: 60, schedule: { campaign: { t0: "2030-11-11T00:00:00Z", lead: "10m", refreshEvery, until: "5m" } } });
    const tight = await checkPlan(cfg, e.store, campaign("5s"), suite.stack.skus);
    expect(tight.ok).toBe(false);
    expect(tight.allowsPassMs).toBe(5000);
    expect(tight.problems).toEqual([
      expect.stringMatching(/^edge-east: a pass over 1000 SKUs takes about 10\.0 s, longer than refreshEvery \(5\.0 s\)/),
      expect.stringMatching(/^edge-north: a pass over 1000 SKUs takes about 10\.0 s, longer than refreshEvery \(5\.0 s\)/),
    ]);
    const roomy = await checkPlan(cfg, e.store, campaign("30s"), suite.stack.skus);
    expect([roomy.ok, roomy.problems]).toEqual([true, []]);
  });
});

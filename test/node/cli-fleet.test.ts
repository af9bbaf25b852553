/**
 * The `prewarm` commands that look at a run or the fleet, against the real
 * stack (two self-hosted edge nodes, the scheduler's Redis): `prewarm status`
 * exits as `prewarm run` does and `--watch` waits for the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { SchedulerConfig } from "../../prewarm-scheduler/config";
import { parsePlan, type Plan } from "../../prewarm-scheduler/plan";
import { watchRun } from "../../prewarm-scheduler/progress";
import type { RunReport } from "../../prewarm-scheduler/run-store";
import { prewarm, startPrewarm } from "./prewarm-cli";
import { useStack } from "./scheduler/stack";

const suite = useStack(200);
const { engine } = suite;
const dir = mkdtempSync(path.join(tmpdir(), "prewarm-cli-fleet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The config as a file for the CLI. */
function configFile(cfg: SchedulerConfig): string {
  const file = path.join(dir, `${cfg.prefix}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
}

function plan(overrides: Record<string, unknown> = {}): Plan {
  return parsePlan({ name: "cli-plan", skus: { list: suite.stack.skus.slice(0, 50) }, ttl: 120, ...overrides });
}

describe("prewarm status", () => {
  it("exits as prewarm run does: 0 done, 1 failed; 5 while the run is still running", async () => {
    const dead = await suite.stack.deadNode();
    const cfg = suite.stack.config({ retry: { attempts: 1, backoffMs: 10 } });
    cfg.nodes.push(dead);
    const file = configFile(cfg);
    const e = engine(cfg);
    const done = await watchRun(e, await e.startRun(plan({ targets: { nodes: ["edge-east", "edge-north"] } })), { bars: false, pollMs: 50 });
    const failed = await watchRun(e, await e.startRun(plan({ name: "to-dead", targets: { nodes: [dead.name] } })), { bars: false, pollMs: 50 });
    expect([done.status, failed.status]).toEqual(["done", "failed"]);
    const idle = engine(cfg, false);
    await idle.batches.pause(); // nobody sends its batches: it stays running
    const running = await idle.startRun(plan({ name: "running" }));

    const shown = await Promise.all([done.runId, failed.runId, running].map((id) => prewarm(["status", id, "-c", file, "--json"])));
    expect(shown.map((r) => r.code)).toEqual([0, 1, 5]);
    expect(shown.map((r) => (JSON.parse(r.out) as RunReport).status)).toEqual(["done", "failed", "running"]);
    const text = await prewarm(["status", failed.runId, "-c", file]);
    expect(text.code).toBe(1);
    expect(text.out).toContain(`run ${failed.runId} (plan to-dead, cli): failed`);
    expect(text.out).toMatch(new RegExp(`${dead.name}: node_unreachable 50`));
    await idle.batches.resume();
  }, 60_000);

  it("--watch refreshes until the run ends, then exits with its code (0 done, 1 failed)", async () => {
    const dead = await suite.stack.deadNode();
    const cfg = suite.stack.config({ retry: { attempts: 1, backoffMs: 10 } });
    cfg.nodes.push(dead);
    const file = configFile(cfg);
    const control = engine(cfg, false);
    await control.batches.pause();
    const ok = await control.startRun(plan({ targets: { nodes: ["edge-east", "edge-north"] } }));
    const bad = await control.startRun(plan({ name: "to-dead", targets: { nodes: [dead.name] } }));
    const watchers = [ok, bad].map((id) => startPrewarm(["status", id, "--watch", "-c", file, "--json"]));
    try {
      await new Promise((r) => setTimeout(r, 3000)); // started and watching a run that does not move
      expect(watchers.map((w) => w.child.exitCode)).toEqual([null, null]);
      await control.batches.resume();
      engine(cfg); // workers: the runs go on and end
      const [a, b] = await Promise.all(watchers.map((w) => w.done));
      const reports = [JSON.parse(a!.out) as RunReport, JSON.parse(b!.out) as RunReport];
      expect([a!.code, b!.code]).toEqual([0, 1]);
      expect(reports.map((r) => [r.runId, r.status, r.warmed, r.failed])).toEqual([
        [ok, "done", 100, 0],
        [bad, "failed", 0, 50],
      ]);
      // Seen within the watch's interval of the end (plus the process's exit).
      const ended = Date.now();
      expect(ended - Math.max(...reports.map((r) => r.finishedAt!))).toBeLessThan(3000);
    } finally {
      for (const w of watchers) w.child.kill("SIGKILL");
    }
  }, 60_000);
});

/**
 * The ops setup of docs/operations.md (runbook 1), run as written by a new
 * operator: copy the example config, export the tokens, give the example
 * campaign a T0 ahead, and validate the plans with `npx prewarm`. Run by bash in a scratch directory
 * that holds what a checkout does for these lines (package.json, bin/,
 * node_modules/, plans/, as links), so the config it copies lands there and
 * not in the repository.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { loadConfig } from "../../prewarm-scheduler/config/config";
import { loadPlan } from "../../prewarm-scheduler/plans/plan";
import { ROOT } from "./prewarm-cli";

const dir = mkdtempSync(path.join(tmpdir(), "prewarm-readme-ops-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The shell block between the ops setup markers of docs/operations.md. */
function steps(): string {
  const doc = readFileSync(path.join(ROOT, "docs/operations.md"), "utf8");
  const m = /<!-- ops setup steps[^>]*-->\s*```sh\n([\s\S]*?)```\s*<!-- end of ops setup steps -->/.exec(doc);
  if (!m) throw new Error("docs/operations.md has no ops setup steps block");
  return m[1]!;
}

it("the ops setup of docs/operations.md copies the example config, exports every token it reads, and validates the example plans with npx prewarm", async () => {
  const script = steps();
  // Every ${VAR} the example config reads is exported by the steps.
  const config = readFileSync(path.join(ROOT, "plans/prewarm.config.example.yaml"), "utf8").replace(/(^|\s)#.*$/gm, ""); // its values, not its comments
  const needed = [...new Set([...config.matchAll(/\$\{([A-Z_][A-Z0-9_]*)\}/g)].map((m) => m[1]!))];
  const exported = [...(/^export (.*)$/m.exec(script)?.[1] ?? "").matchAll(/\b([A-Z][A-Z0-9_]*)=/g)].map((m) => m[1]!);
  expect(needed.sort()).toEqual(["OPS_TOKEN", "PREWARM_TOKEN", "REGISTRY_TOKEN"]);
  expect(exported.sort()).toEqual(needed);

  for (const f of ["package.json", "bin", "node_modules", "plans"]) symlinkSync(path.join(ROOT, f), path.join(dir, f));
  // A clean environment: nothing the steps do not set themselves (PATH and HOME for npx).
  const env = { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? dir };
  const r = await new Promise<{ code: number; out: string; err: string }>((resolve) =>
    execFile("bash", ["-euo", "pipefail", "-c", script], { cwd: dir, env, timeout: 60_000 }, (e, out, err) => resolve({ code: e === null ? 0 : Number(e.code), out, err })),
  );
  expect(r.code, r.err).toBe(0);
  expect(r.out).toMatch(/^flash\.yaml: OK \(singles-day-flash: campaign, \d+ runs ahead from /m);
  expect(r.out).toMatch(/^plans\/nightly-catalogue\.yaml: OK \(nightly-catalogue: cron, next /m);
  expect(r.out).toContain("(nodes and regions checked against prewarm.config.yaml)");

  // What the steps left: the config to edit, and the campaign with its T0 an hour ahead and a check before it.
  expect(existsSync(path.join(dir, "prewarm.config.yaml"))).toBe(true);
  expect(loadConfig(path.join(dir, "prewarm.config.yaml"), { PREWARM_TOKEN: "t", OPS_TOKEN: "o", REGISTRY_TOKEN: "" }).nodes.map((n) => n.name)).toEqual(["edge-sh-1", "edge-sh-2", "edge-bj-1"]);
  const campaign = loadPlan(path.join(dir, "flash.yaml")).schedule.campaign!;
  expect(Math.abs(campaign.t0 - (Date.now() + 3_600_000))).toBeLessThan(60_000);
  expect(campaign.verifyBefore).toBe(180_000);
}, 90_000);

it("the example campaign has a check before T0 and its T0 is a date ops set (validate says when it has passed)", () => {
  const c = loadPlan(path.join(ROOT, "plans/singles-day-flash.yaml")).schedule.campaign!;
  expect(c.verifyBefore).toBe(180_000);
  expect(readFileSync(path.join(ROOT, "plans/singles-day-flash.yaml"), "utf8")).toMatch(/^# T0 is the sale's start: set it for yours/m);
});

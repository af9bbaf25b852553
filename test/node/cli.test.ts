/**
 * The `prewarm` command as a new operator meets it: `npx prewarm` (the
 * package's bin), what it prints, and its exit codes. These need no Redis and
 * no node; the commands that do are in cli-fleet.test.ts. (The helpers are
 * in prewarm-cli.ts.)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { Validation } from "../../prewarm-scheduler/plans/validate";
import { prewarm, ROOT } from "./prewarm-cli";
import { parsePlan } from "../../prewarm-scheduler/plans/plan";
import { isInvalidFileError } from "../../prewarm-scheduler/config/schema-errors";

const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string; bin?: Record<string, string> };
describe("npx prewarm", () => {
  it("is the package's bin, and --version prints the package version and nothing else", async () => {
    expect(PACKAGE.bin).toEqual({ prewarm: "bin/prewarm.mjs" });
    const r = await prewarm(["--version"]);
    expect(r).toMatchObject({ code: 0, out: `${PACKAGE.version}\n` });
  });
});

describe("a plan's cron pattern", () => {
  const doc = (cron: string, tz?: string): unknown => ({ name: "nightly", skus: { list: ["a"] }, schedule: { cron, ...(tz ? { tz } : {}) } });
  const problems = (d: unknown): readonly string[] => {
    try {
      parsePlan(d, "nightly.yaml");
      return [];
    } catch (e) {
      if (!isInvalidFileError(e)) throw e;
      return e.problems;
    }
  };

  it("is refused when the plan is loaded, with an error naming schedule.cron, not first at `prewarm schedule`", () => {
    expect(problems(doc("61 * * * *"))).toEqual([expect.stringMatching(/^schedule\.cron: not a cron pattern .*"61 \* \* \* \*": Constraint error, got value 61 expected range 0-59$/)]);
    expect(problems(doc("every night please", "Asia/Shanghai"))).toEqual([expect.stringMatching(/^schedule\.cron: not a cron pattern/)]);
    expect(problems(doc("0 0 31 2 *"))).toEqual([expect.stringMatching(/^schedule\.cron: /)]); // 31 February: never
    expect(problems(doc("* * * * * * *"))).toEqual([expect.stringMatching(/^schedule\.cron: .*too many fields/)]);
  });

  it("is accepted as BullMQ schedules it: five fields, or six with seconds first, in the plan's zone", () => {
    expect(problems(doc("0 3 * * *", "Asia/Shanghai"))).toEqual([]);
    expect(problems(doc("*/30 * * * * *"))).toEqual([]);
    expect(problems(doc("0 9 * * MON-FRI"))).toEqual([]);
  });
});

describe("prewarm validate", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "prewarm-validate-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, doc: unknown): string => {
    const file = path.join(dir, name);
    writeFileSync(file, stringify(doc));
    return file;
  };
  const campaign = (t0: string, extra: Record<string, unknown> = {}) => ({ campaign: { t0, lead: "10m", refreshEvery: "30s", until: "15m", verifyBefore: "3m", ...extra } });
  // The scheduler's Redis is a port where nothing listens: validate must not need it.
  const config = write("prewarm.config.yaml", {
    redis: "redis://127.0.0.1:1",
    token: "t",
    nodes: [
      { name: "edge-sh-1", url: "http://10.0.1.10:8787", region: "cn-east" },
      { name: "edge-bj-1", url: "http://10.0.2.10:8787", region: "cn-north" },
    ],
  });

  it("checks each plan offline and prints, as JSON alone, OK or its errors field by field; exit 2 on any error", async () => {
    const good = write("good.yaml", { name: "good", skus: { list: ["a"] }, targets: { regions: ["cn-east"] }, ttl: 60, schedule: campaign("2099-11-11T00:00:00+08:00") });
    const cron = write("cron.yaml", { name: "nightly", skus: { list: ["a"] }, schedule: { cron: "0 3 * * *", tz: "Asia/Shanghai" } });
    const badCron = write("bad-cron.yaml", { name: "bad-cron", skus: { list: ["a"] }, targets: { nodes: ["edge-gz-1"] }, schedule: { cron: "0 25 * * *" } });
    const past = write("past.yaml", { name: "past", skus: { list: ["a"] }, ttl: 60, schedule: campaign("2020-11-11T00:00:00+08:00") });
    const broken = write("broken.yaml", { name: "Broken", skus: { list: ["bad sku"] }, ttl: 0 });
    const started = Date.now();
    const r = await prewarm(["validate", good, cron, badCron, past, broken, "-c", config, "--json"]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(2);
    const v = JSON.parse(r.out) as Validation; // stdout is the JSON and nothing else
    expect(v).toMatchObject({ ok: false, config });
    expect(v.plans.map((p) => [p.plan, p.ok])).toEqual([["good", true], ["nightly", true], [null, false], ["past", false], [null, false]]);
    expect(v.plans[0]).toMatchObject({ kind: "campaign", runs: 51, next: Date.parse("2099-11-11T00:00:00+08:00") - 600_000, problems: [], warnings: [] });
    expect(v.plans[1]).toMatchObject({ kind: "cron", next: expect.any(Number), problems: [] });
    expect(v.plans[2]!.problems).toEqual([expect.stringMatching(/^schedule\.cron: not a cron pattern .*"0 25 \* \* \*"/)]);
    expect(v.plans[3]!.problems).toEqual([expect.stringMatching(/^schedule\.campaign\.t0: T0 2020-11-10T16:00:00\.000Z has passed, and so has T0 \+ until .*every run of the campaign is in the past/)]);
    expect(v.plans[4]!.problems).toEqual([
      expect.stringMatching(/^name: must be lowercase/),
      expect.stringMatching(/^skus\.list\[0\]: not a SKU id/),
      expect.stringMatching(/^ttl: /),
    ]);
  });

  it("checks the nodes and regions a plan targets against the config, as warnings when the registry may add nodes", async () => {
    const plan = write("targets.yaml", { name: "targets", skus: { list: ["a"] }, targets: { nodes: ["edge-sh-1", "edge-gz-1"] } });
    const regions = write("regions.yaml", { name: "regions", skus: { list: ["a"] }, targets: { regions: ["cn-south"] } });
    const r = await prewarm(["validate", plan, regions, "-c", config, "--json"]);
    expect(r.code).toBe(2);
    const v = JSON.parse(r.out) as Validation;
    expect(v.plans.map((p) => p.problems)).toEqual([
      ["targets.nodes: not in the config: edge-gz-1 (known: edge-sh-1, edge-bj-1)"],
      ["targets.regions: no configured node in cn-south"],
    ]);
    const open = write("open.config.yaml", { redis: "redis://127.0.0.1:1", token: "t", nodes: [], nodeUrlAllow: ["http://10.0.*.*:8787"] });
    const w = await prewarm(["validate", plan, "-c", open, "--json"]);
    expect(w.code).toBe(0);
    expect((JSON.parse(w.out) as Validation).plans[0]).toMatchObject({ ok: true, warnings: [expect.stringMatching(/^targets\.nodes: not in the config: edge-sh-1, edge-gz-1 .*; a registry node may have it when the plan runs$/)] });
  });

  it("warns, without failing, about a campaign already under way, and prints a line per plan as text", async () => {
    const t0 = new Date(Date.now() - 60_000).toISOString();
    const late = write("late.yaml", { name: "late", skus: { list: ["a"] }, ttl: 60, schedule: campaign(t0) });
    const r = await prewarm(["validate", late]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^${late.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: OK \\(late: campaign, \\d+ runs ahead from `));
    expect(r.out).toContain(`warning: schedule.campaign.t0: T0 ${new Date(Date.parse(t0)).toISOString()} has passed: only the`);
    expect(r.out).toContain("warning: schedule.campaign.verifyBefore: the check before T0");
    expect(r.out).toContain("(no config: the nodes and regions plans target were not checked; give one with -c)");
  });
});

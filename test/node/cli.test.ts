/**
 * The `prewarm` command as a new operator meets it: `npx prewarm` (the
 * package's bin), what it prints, and its exit codes. These need no Redis and
 * no node; the commands that do are in cli-fleet.test.ts.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parsePlan } from "../../prewarm-scheduler/plan";
import { isInvalidFileError } from "../../prewarm-scheduler/schema-errors";

const ROOT = path.resolve(import.meta.dirname, "../..");
const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string; bin?: Record<string, string> };

interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Runs a command to its end (no shell), its output and exit code. */
function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
    });
  });
}

/** `npx prewarm …` in the checkout, as the README has it. */
const npxPrewarm = (args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> => run("npx", ["prewarm", ...args], o);

describe("npx prewarm", () => {
  it("is the package's bin, and --version prints the package version and nothing else", async () => {
    expect(PACKAGE.bin).toEqual({ prewarm: "bin/prewarm.mjs" });
    const r = await npxPrewarm(["--version"]);
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

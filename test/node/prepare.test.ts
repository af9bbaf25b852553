/**
 * `npm run node` on a built tree starts from the built bundle: no Go, no
 * build (issue 22); it builds only what is missing or older than its sources.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { staleBecause } from "../../edge-node/bundle";
import { BUNDLE_DIR, COMPAT_FILE, ROOT } from "../../edge-node/workerd-config";

describe("a built bundle", () => {
  it("is stale when missing, or when a source of it is newer; current otherwise, and in a tree without sources (a release)", () => {
    const root = mkdtempSync(path.join(tmpdir(), "prepare-"));
    try {
      const bundle = path.join(root, "build/node");
      expect(staleBecause(bundle, root)).toMatch(/is not built/);
      mkdirSync(bundle, { recursive: true });
      writeFileSync(path.join(bundle, COMPAT_FILE), "{}");
      expect(staleBecause(bundle, root)).toBeNull(); // a release: the bundle, no sources
      mkdirSync(path.join(root, "worker/http"), { recursive: true });
      writeFileSync(path.join(root, "worker/http/read.ts"), "");
      const past = new Date(Date.now() - 60_000);
      utimesSync(path.join(bundle, COMPAT_FILE), past, past);
      expect(staleBecause(bundle, root)).toBe(`${path.join("worker", "http", "read.ts")} changed since it was built`);
      const future = new Date(Date.now() + 60_000);
      utimesSync(path.join(bundle, COMPAT_FILE), future, future);
      expect(staleBecause(bundle, root)).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("is what npm run node's first step starts from, building nothing, when it is current", () => {
    expect(staleBecause(BUNDLE_DIR)).toBeNull(); // the test run built it
    const before = statSync(path.join(BUNDLE_DIR, COMPAT_FILE)).mtimeMs;
    const out = execFileSync(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/prepare.ts")], { cwd: ROOT, encoding: "utf8" });
    expect(out).toMatch(/^edge node: using the built bundle in build\/node\/ \(rules [0-9a-f]{12}\)$/m);
    expect(statSync(path.join(BUNDLE_DIR, COMPAT_FILE)).mtimeMs).toBe(before);
  });
});

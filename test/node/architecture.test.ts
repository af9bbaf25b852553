/**
 * The tree's own rules (docs/architecture.md), read from the sources with the
 * TypeScript compiler's import scanner: no import cycle anywhere (type-only
 * imports count: a reader has to follow them too), `contract/` imports nothing
 * of the project, and each worker folder uses only what its line allows.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIRS = ["contract", "records", "worker", "edge-node", "prewarm-scheduler", "regional"];

function statSafe(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap((f) => {
    const rel = path.join(dir, f);
    if (statSync(path.join(ROOT, rel)).isDirectory()) return sources(rel);
    return f.endsWith(".ts") && !f.endsWith(".d.ts") ? [rel] : [];
  });
}

/** Each project file's imports of other project files (relative specifiers, resolved). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of DIRS.flatMap(sources)) {
    const info = ts.preProcessFile(readFileSync(path.join(ROOT, file), "utf8"), true, true);
    const deps = info.importedFiles
      .map((i) => i.fileName)
      .filter((s) => s.startsWith("."))
      .map((s) => path.normalize(path.join(path.dirname(file), s)))
      .map((p) => (p.endsWith(".ts") || path.extname(p) === ".wasm" ? p : `${p}.ts`));
    graph.set(file, deps);
  }
  return graph;
}

function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, "open");
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === "open") found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return found;
}

describe("the tree", () => {
  const graph = importGraph();

  it("reads every source it checks", () => {
    expect(graph.size).toBeGreaterThan(60);
    expect(graph.get("worker/http/router.ts")).toContain("worker/http/read.ts");
  });

  it("names only existing project files in the paths its scripts, benchmarks and tests spawn (a moved file breaks them, and no type check sees a string)", () => {
    const named = /["'`]((?:contract|records|worker|edge-node|prewarm-scheduler|regional|scripts|bench)\/[\w./-]+\.(?:ts|mjs))["'`]/g;
    const missing = ["scripts", "bench", "test", "edge-node", "bin"].flatMap((d) => sources(d)).concat(["bin/prewarm.mjs"]).flatMap((f) =>
      [...readFileSync(path.join(ROOT, f), "utf8").matchAll(named)].map((m) => m[1]!).filter((p) => !statSafe(path.join(ROOT, p))).map((p) => `${f}: ${p}`),
    );
    expect(missing).toEqual([]);
  });

  it("has no import cycle", () => {
    expect(cycles(graph).map((c) => c.join(" -> "))).toEqual([]);
  });

  it("finds a cycle when there is one (the check itself)", () => {
    expect(cycles(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]]))).toEqual([["a", "b", "c", "a"]]);
  });

  const allowed: Record<string, string[]> = {
    "contract/": ["contract/"],
    "records/": ["records/", "contract/"],
    // The rules version the build wrote beside the module (worker/rules/version.ts).
    "worker/rules/": ["worker/rules/", "build/go-stock-rules-version.txt"],
    "worker/sources/": ["worker/sources/", "records/", "contract/", "worker/config.ts", "worker/metrics.ts"],
    "worker/node/": ["worker/node/", "worker/sources/", "worker/cache/entry.ts", "worker/config.ts", "worker/metrics.ts"],
    "worker/cache/": ["worker/cache/", "worker/node/", "worker/sources/", "worker/config.ts", "worker/metrics.ts"],
    // The scheduler, in layers: each folder uses only those below it.
    "prewarm-scheduler/config/": ["prewarm-scheduler/config/", "contract/"],
    "prewarm-scheduler/redis/": ["prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/"],
    "prewarm-scheduler/plans/": ["prewarm-scheduler/plans/", "prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/"],
    "prewarm-scheduler/fleet/": ["prewarm-scheduler/fleet/", "prewarm-scheduler/plans/", "prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/"],
    "prewarm-scheduler/runs/": ["prewarm-scheduler/runs/", "prewarm-scheduler/fleet/", "prewarm-scheduler/plans/", "prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/"],
    // (and the package's version, which its OpenAPI document carries; the console's API page shows the edge node's committed document)
    "prewarm-scheduler/ops/": ["prewarm-scheduler/ops/", "prewarm-scheduler/runs/", "prewarm-scheduler/fleet/", "prewarm-scheduler/plans/", "prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/", "package.json", "docs/openapi/edge-node.json"],
    // The console, inside the ops API it calls (its pages read the layers below; its actions go through the API).
    "prewarm-scheduler/ops/console/": ["prewarm-scheduler/ops/", "prewarm-scheduler/runs/", "prewarm-scheduler/fleet/", "prewarm-scheduler/plans/", "prewarm-scheduler/redis/", "prewarm-scheduler/config/", "contract/", "package.json", "docs/openapi/edge-node.json"],
    // The CLI, on top of everything, reads the package's version too.
    "prewarm-scheduler/cli/": ["prewarm-scheduler/", "contract/", "package.json"],
  };
  it("holds every file of the scheduler in one of its folders", () => {
    const loose = [...graph.keys()].filter((f) => /^prewarm-scheduler\/[^/]+$/.test(f));
    expect(loose).toEqual([]);
  });
  for (const [folder, may] of Object.entries(allowed)) {
    it(`lets ${folder} use only ${may.join(", ")}`, () => {
      const outside = [...graph]
        .filter(([f]) => f.startsWith(folder))
        .flatMap(([f, deps]) => deps.filter((d) => !may.some((m) => d.startsWith(m))).map((d) => `${f} -> ${d}`));
      expect(outside).toEqual([]);
    });
  }
});

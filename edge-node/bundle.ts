/**
 * Builds what a self-hosted node runs: the wrangler bundle of a worker
 * (`wrangler deploy --dry-run --outdir`, the bundle Cloudflare would run),
 * with the worker's compatibility settings beside it (`compat.json`) for the
 * workerd config the supervisor writes at start, and its rules version
 * stamped from the module it holds (`stampRulesVersion`).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { COMPAT_FILE, ROOT, compatibilityOf } from "./workerd-config";

/**
 * Bundles the worker of `wranglerToml` into `outDir`, replacing it whole at
 * the end (a node starting meanwhile sees the old bundle or the new one,
 * never half of one; running nodes work from their own copy).
 */
export function buildBundle(wranglerToml: string, outDir: string): void {
  const staging = `${outDir}.build-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  execFileSync(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", staging, "--config", wranglerToml], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    // WRANGLER_LOG keeps wrangler quiet but for errors.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "error", CI: "true", NO_COLOR: "1" },
  });
  writeFileSync(path.join(staging, COMPAT_FILE), `${JSON.stringify(compatibilityOf(wranglerToml))}\n`);
  stampRulesVersion(staging);
  const old = `${outDir}.old-${process.pid}`;
  if (existsSync(outDir)) renameSync(outDir, old);
  renameSync(staging, outDir);
  rmSync(old, { recursive: true, force: true });
}

/** SPEC §9: the rules version of a go-stock.wasm, the first 12 hex digits of the SHA-256 of its bytes. */
export function rulesVersionOf(wasm: Uint8Array): string {
  return createHash("sha256").update(wasm).digest("hex").slice(0, 12);
}

/**
 * Writes the rules version of the bundle in `dir` from the go-stock module it
 * holds into the text module the worker reads it from
 * (`worker/rules/version.ts`), so that the version a node shows is always
 * that of the bytes it runs, even when the module file was replaced after
 * the build. Returns it; null for a bundle without the rules (the
 * benchmarks' empty worker).
 */
export function stampRulesVersion(dir: string): string | null {
  const files = readdirSync(dir);
  const modules = files.filter((f) => f.endsWith("go-stock.wasm"));
  if (modules.length === 0) return null;
  if (modules.length > 1) throw new Error(`${dir} holds ${modules.length} go-stock modules (${modules.join(", ")}): a bundle runs one`);
  const version = rulesVersionOf(readFileSync(path.join(dir, modules[0]!)));
  const stamps = files.filter((f) => f.endsWith("go-stock-rules-version.txt"));
  if (stamps.length === 0) throw new Error(`${dir} has a go-stock module but no go-stock-rules-version.txt module: rebuild it with npm run build:node`);
  for (const f of stamps) writeFileSync(path.join(dir, f), version);
  return version;
}

/** Source folders and files whose change makes a built bundle stale (those that are present: a release tree has none). */
const SOURCES = ["wrangler.toml", "package.json", "worker", "contract", "records", "go-stock", "build/go-stock.wasm"];

/**
 * Why the bundle in `bundleDir` must be built (again): it is missing, or a
 * source of it, or of its Wasm module, is newer; null when it is current. A
 * built tree without the sources (a release) is current as long as its
 * bundle is there, so a node starts from it without Go or a build.
 */
export function staleBecause(bundleDir: string, root = ROOT): string | null {
  const marker = path.join(bundleDir, COMPAT_FILE);
  if (!existsSync(marker)) return `${path.relative(root, bundleDir)} is not built`;
  const built = statSync(marker).mtimeMs;
  for (const top of SOURCES) {
    const at = path.join(root, top);
    if (!existsSync(at)) continue;
    const files = statSync(at).isDirectory() ? readdirSync(at, { recursive: true, encoding: "utf8" }).map((f) => path.join(at, f)) : [at];
    const newer = files.find((f) => {
      if (f.includes(`${path.sep}node_modules${path.sep}`)) return false;
      const st = statSync(f);
      return st.isFile() && st.mtimeMs > built;
    });
    if (newer) return `${path.relative(root, newer)} changed since it was built`;
  }
  return null;
}

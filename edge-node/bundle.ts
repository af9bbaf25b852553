/**
 * Builds what a self-hosted node runs: the wrangler bundle of a worker
 * (`wrangler deploy --dry-run --outdir`, the bundle Cloudflare would run),
 * with the worker's compatibility settings beside it (`compat.json`) for the
 * workerd config the supervisor writes at start.
 */
import { execFileSync } from "node:child_process";
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
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
  const old = `${outDir}.old-${process.pid}`;
  if (existsSync(outDir)) renameSync(outDir, old);
  renameSync(staging, outDir);
  rmSync(old, { recursive: true, force: true });
}

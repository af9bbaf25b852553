/**
 * Builds what a self-hosted node runs: the wrangler bundle of a worker
 * (`wrangler deploy --dry-run --outdir`, the bundle Cloudflare would run),
 * with the worker's compatibility settings beside it (`compat.json`) for the
 * workerd config the supervisor writes at start.
 */
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { COMPAT_FILE, ROOT, compatibilityOf } from "./workerd-config";

/** Bundles the worker of `wranglerToml` into `outDir`. */
export function buildBundle(wranglerToml: string, outDir: string): void {
  rmSync(outDir, { recursive: true, force: true });
  execFileSync(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outDir, "--config", wranglerToml], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    // WRANGLER_LOG keeps wrangler quiet but for errors.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "error", CI: "true", NO_COLOR: "1" },
  });
  writeFileSync(path.join(outDir, COMPAT_FILE), `${JSON.stringify(compatibilityOf(wranglerToml))}\n`);
}

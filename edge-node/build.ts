/**
 * `npm run build:node`: the wrangler bundle (`wrangler deploy --dry-run
 * --outdir build/node`, after the Wasm module is built) and the workerd config
 * generated beside it.
 */
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { BUNDLE_DIR, CONFIG_FILE, ROOT, compatibilityOf, workerdConfig } from "./workerd-config";

rmSync(BUNDLE_DIR, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", BUNDLE_DIR], {
  cwd: ROOT,
  stdio: ["ignore", "ignore", "inherit"],
  // WRANGLER_LOG keeps wrangler quiet but for errors.
  env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "error", CI: "true", NO_COLOR: "1" },
});
writeFileSync(CONFIG_FILE, workerdConfig({ bundleDir: BUNDLE_DIR, ...compatibilityOf(path.join(ROOT, "wrangler.toml")) }));
console.log(`edge node bundle and workerd config in ${path.relative(ROOT, BUNDLE_DIR)}/`);

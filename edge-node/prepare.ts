/**
 * `npm run node`'s first step: builds go-stock.wasm and the worker bundle
 * only when they are missing or older than their sources (`staleBecause`).
 * A built tree, or a release copied without its sources, starts as it is:
 * no Go and no build on a production node, and a rollout is a new bundle
 * (SIGHUP), not a rebuild at every start.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { buildBundle, staleBecause, stampRulesVersion } from "./bundle";
import { BUNDLE_DIR, ROOT } from "./workerd-config";

const why = staleBecause(BUNDLE_DIR);
if (why === null) {
  console.log(`edge node: using the built bundle in ${path.relative(ROOT, BUNDLE_DIR)}/ (rules ${stampRulesVersion(BUNDLE_DIR) ?? "none"})`);
} else {
  console.log(`edge node: building the bundle (${why})`);
  execFileSync("bash", [path.join(ROOT, "go-stock/build.sh")], { cwd: ROOT, stdio: "inherit" });
  buildBundle(path.join(ROOT, "wrangler.toml"), BUNDLE_DIR);
}

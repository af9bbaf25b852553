/**
 * The rules version of this worker (SPEC §9): the first 12 hex digits of the
 * SHA-256 of the go-stock.wasm bytes it runs. Computed when the module is
 * built (go-stock/build.sh writes it beside the module): workerd hands the
 * worker the module compiled, never its bytes. A self-hosted node's
 * supervisor writes it again from the module in the bundle it runs
 * (edge-node/bundle.ts `stampRulesVersion`), so a replaced module file shows.
 */
import version from "../../build/go-stock-rules-version.txt";

/** 12 lowercase hex digits. */
export const RULES_VERSION: string = version.trim();

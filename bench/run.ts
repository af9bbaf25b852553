/**
 * `npm run bench`: every benchmark, each against a baseline measured in the
 * same run (absolute times on a shared 2-core machine are noise; ratios are not).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { benchPrewarm } from "./prewarm";
import { benchRules } from "./rules";

async function main(): Promise<void> {
  const results: Record<string, unknown> = { at: new Date().toISOString() };

  const rules = benchRules();
  results["rules"] = rules;
  console.log(
    `rules, 1,000-SKU batch   wasm ${rules.wasmNsPerSku.toFixed(0)} ns/SKU  native Go ${rules.nativeNsPerSku.toFixed(0)} ns/SKU  ` +
      `ratio ${rules.ratio.toFixed(2)}x native`,
  );

  const prewarm = await benchPrewarm();
  results["prewarm"] = prewarm;
  console.log(
    `prewarm, 1,000-SKU batch ${Math.round(prewarm.skusPerSecond)} SKUs/s end to end  ` +
      `baseline (ioredis pipelined GETs of the same keys) ${Math.round(prewarm.baselineKeysPerSecond / 2)} SKUs/s  ratio ${prewarm.ratio.toFixed(3)}`,
  );

  const dir = path.resolve(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results written to bench/results/latest.json`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

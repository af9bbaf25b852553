/**
 * Rules cost per SKU: go-stock.wasm driven by the worker's own host code
 * (V8, as in workerd) against the native Go benchmark of the same package,
 * both measured in this run on the same 1,000-SKU input frame.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { encodeRecord } from "../records/encode";
import { demoCatalog } from "../records/demo-catalog";
import { encodeFrame, RulesHost, type RulesInput } from "../worker/rules-host";
import { median } from "./stats";

const ROOT = path.resolve(import.meta.dirname, "..");
const BATCH = 1000;

export interface RulesBench {
  wasmNsPerSku: number;
  nativeNsPerSku: number;
  ratio: number;
}

function benchItems(): RulesInput[] {
  const now = Date.now();
  return demoCatalog(BATCH, now).map((r) => ({
    sku: r.sku,
    region: "cn-east",
    now,
    ttlMs: 30_000,
    source: "edge",
    stock: encodeRecord(r.stock),
    price: encodeRecord(r.price),
  }));
}

function wasmNsPerSku(items: readonly RulesInput[]): number {
  const module = new WebAssembly.Module(readFileSync(path.join(ROOT, "build/go-stock.wasm")));
  const host = new RulesHost(module);
  for (let i = 0; i < 50; i++) host.run(items); // warm-up: instantiate, JIT tiers
  const samples: number[] = [];
  for (let round = 0; round < 15; round++) {
    const n = 20;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) host.run(items);
    samples.push(Number(process.hrtime.bigint() - t0) / n / BATCH);
  }
  return median(samples);
}

/**
 * The native benchmark runs on the very frame the Wasm module gets
 * (GO_STOCK_BENCH_FRAME), built with the same profile-guided optimisation.
 */
function nativeNsPerSku(items: readonly RulesInput[]): number {
  const dir = mkdtempSync(path.join(tmpdir(), "go-stock-bench-"));
  const framePath = path.join(dir, "frame.bin");
  writeFileSync(framePath, encodeFrame(items));
  const out = execFileSync("go", ["test", "-pgo", "cmd/go-stock-wasm/default.pgo", "-run", "^$", "-bench", "^BenchmarkBatch1000$", "-benchtime", "2s", "-count", "3", "./rules"], {
    cwd: path.join(ROOT, "go-stock"),
    encoding: "utf8",
    env: { ...process.env, GO_STOCK_BENCH_FRAME: framePath },
  });
  rmSync(dir, { recursive: true, force: true });
  const nsPerOp = [...out.matchAll(/^BenchmarkBatch1000\S*\s+\d+\s+([\d.]+) ns\/op/gm)].map((m) => Number(m[1]));
  if (nsPerOp.length === 0) throw new Error(`no BenchmarkBatch1000 result in:\n${out}`);
  return median(nsPerOp) / BATCH;
}

export function benchRules(): RulesBench {
  const items = benchItems();
  const wasm = wasmNsPerSku(items);
  const native = nativeNsPerSku(items);
  return { wasmNsPerSku: wasm, nativeNsPerSku: native, ratio: wasm / native };
}

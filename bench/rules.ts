/**
 * Rules cost per SKU: go-stock.wasm driven by the worker's own host code
 * (V8, as in workerd) against the native Go benchmark of the same package,
 * both measured in this run on a 1,000-SKU batch.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { encodeRecord } from "../records/encode";
import { demoCatalog } from "../records/demo-catalog";
import { RulesHost, type RulesInput } from "../worker/rules-host";
import { median } from "./stats";

const ROOT = path.resolve(import.meta.dirname, "..");
const BATCH = 1000;

export interface RulesBench {
  wasmNsPerSku: number;
  nativeNsPerSku: number;
  ratio: number;
}

function wasmNsPerSku(): number {
  const module = new WebAssembly.Module(readFileSync(path.join(ROOT, "build/go-stock.wasm")));
  const host = new RulesHost(module);
  const now = Date.now();
  const items: RulesInput[] = demoCatalog(BATCH, now).map((r) => ({
    sku: r.sku,
    region: "cn-east",
    now,
    ttlMs: 30_000,
    source: "edge",
    stock: encodeRecord(r.stock),
    price: encodeRecord(r.price),
  }));
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

function nativeNsPerSku(): number {
  const out = execFileSync("go", ["test", "-run", "^$", "-bench", "^BenchmarkBatch1000$", "-benchtime", "2s", "-count", "3", "./rules"], {
    cwd: path.join(ROOT, "go-stock"),
    encoding: "utf8",
  });
  const nsPerOp = [...out.matchAll(/^BenchmarkBatch1000\S*\s+\d+\s+([\d.]+) ns\/op/gm)].map((m) => Number(m[1]));
  if (nsPerOp.length === 0) throw new Error(`no BenchmarkBatch1000 result in:\n${out}`);
  return median(nsPerOp) / BATCH;
}

export function benchRules(): RulesBench {
  const wasm = wasmNsPerSku();
  const native = nativeNsPerSku();
  return { wasmNsPerSku: wasm, nativeNsPerSku: native, ratio: wasm / native };
}

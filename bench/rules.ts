/**
 * Rules cost per SKU: go-stock.wasm in V8 (as in workerd) against the native
 * Go benchmark of the same package, both measured in this run on the same
 * 1,000-SKU input frame. The Wasm side is timed twice: the export alone
 * (`aggregate_batch` on a frame already in memory: the same Go function the
 * native benchmark runs, RunBatch), and the worker's whole call through its
 * host code (writing the frame, the export, and reading the results back as
 * JS strings), which is what a prewarm pays.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { encodeRecord } from "../records/encode";
import { demoCatalog } from "../records/demo-catalog";
import { encodeFrame, instantiateRules, RulesHost, type RulesInput } from "../worker/rules-host";
import { median } from "./stats";

const ROOT = path.resolve(import.meta.dirname, "..");
const BATCH = 1000;

export interface RulesBench {
  /** The CPU the figures were taken on (they differ by CPU; see README). */
  cpu: string;
  /** aggregate_batch alone. */
  wasmNsPerSku: number;
  /** RulesHost.run: frame in, aggregate_batch, results out. */
  hostCallNsPerSku: number;
  nativeNsPerSku: number;
  /** wasmNsPerSku / nativeNsPerSku. */
  ratio: number;
  /** hostCallNsPerSku / nativeNsPerSku. */
  hostCallRatio: number;
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

const wasmModule = (): WebAssembly.Module => new WebAssembly.Module(readFileSync(path.join(ROOT, "build/go-stock.wasm")));

/**
 * Median ns per SKU of `call` (one 1,000-SKU batch), after a warm-up of at
 * least 2 s: V8 runs new Wasm code in its baseline tier (Liftoff) and tiers
 * hot functions up to TurboFan on background threads, which on a busy 2-core
 * machine can take longer than a fixed 50 calls; timing before that measures
 * Liftoff, about twice as slow.
 */
function nsPerSku(call: () => void): number {
  const warm = performance.now() + 2000;
  for (let i = 0; i < 50 || performance.now() < warm; i++) call();
  const samples: number[] = [];
  for (let round = 0; round < 15; round++) {
    const n = 20;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) call();
    samples.push(Number(process.hrtime.bigint() - t0) / n / BATCH);
  }
  return median(samples);
}

/** The worker's whole call: RulesHost.run, as aggregates.ts makes it. */
function hostCallNsPerSku(items: readonly RulesInput[]): number {
  const host = new RulesHost(wasmModule());
  return nsPerSku(() => host.run(items));
}

/** The export alone, on the frame written once into the input buffer (it only reads it). */
function exportNsPerSku(items: readonly RulesInput[]): number {
  const exports = instantiateRules(wasmModule());
  const frame = encodeFrame(items);
  const ptr = exports.input_buffer(frame.length); // may grow memory: take the view after it
  new Uint8Array(exports.memory.buffer, ptr, frame.length).set(frame);
  const packed = exports.aggregate_batch(frame.length);
  const out = new Uint8Array(exports.memory.buffer, Number(packed >> 32n), Number(packed & 0xffffffffn));
  if (out[0] !== 0) throw new Error(`go-stock rejected the benchmark frame: ${new TextDecoder().decode(out.subarray(5))}`);
  return nsPerSku(() => exports.aggregate_batch(frame.length));
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
  const wasm = exportNsPerSku(items);
  const hostCall = hostCallNsPerSku(items);
  const native = nativeNsPerSku(items);
  return { cpu: cpus()[0]?.model ?? "unknown", wasmNsPerSku: wasm, hostCallNsPerSku: hostCall, nativeNsPerSku: native, ratio: wasm / native, hostCallRatio: hostCall / native };
}

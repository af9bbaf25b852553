/**
 * Rules cost per SKU: go-stock.wasm in V8 (as in workerd) against the native
 * Go benchmark of the same package, both measured in this run on the same
 * 1,000-SKU input frame, in three interleaved rounds (Wasm, host call,
 * native, again and again), so that the load of a shared machine weighs on
 * both sides alike; each figure is the median of its rounds, with its spread. The Wasm side is timed twice: the export alone
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
import { encodeFrame, instantiateRules, RulesHost, type RulesInput } from "../worker/rules/host";
import { median } from "./stats";

const ROOT = path.resolve(import.meta.dirname, "..");
const BATCH = 1000;

export interface RulesBench {
  /** The CPU the figures were taken on (they differ by CPU; see README). */
  cpu: string;
  /** Each round's figures (ns per SKU), for the spread. */
  rounds: { wasm: number; hostCall: number; native: number }[];
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
function hostCall(items: readonly RulesInput[]): () => void {
  const host = new RulesHost(wasmModule());
  return () => host.run(items);
}

/** The export alone, on the frame written once into the input buffer (it only reads it). */
function exportCall(items: readonly RulesInput[]): () => void {
  const exports = instantiateRules(wasmModule());
  const frame = encodeFrame(items);
  const ptr = exports.input_buffer(frame.length); // may grow memory: take the view after it
  new Uint8Array(exports.memory.buffer, ptr, frame.length).set(frame);
  const packed = exports.aggregate_batch(frame.length);
  const out = new Uint8Array(exports.memory.buffer, Number(packed >> 32n), Number(packed & 0xffffffffn));
  if (out[0] !== 0) throw new Error(`go-stock rejected the benchmark frame: ${new TextDecoder().decode(out.subarray(5))}`);
  return () => exports.aggregate_batch(frame.length);
}

/**
 * The native benchmark runs on the very frame the Wasm module gets
 * (GO_STOCK_BENCH_FRAME), built with the same profile-guided optimisation.
 */
function nativeNsPerSku(framePath: string): number {
  const out = execFileSync("go", ["test", "-pgo", "cmd/go-stock-wasm/default.pgo", "-run", "^$", "-bench", "^BenchmarkBatch1000$", "-benchtime", "2s", "-count", "1", "./rules"], {
    cwd: path.join(ROOT, "go-stock"),
    encoding: "utf8",
    env: { ...process.env, GO_STOCK_BENCH_FRAME: framePath },
  });
  const nsPerOp = [...out.matchAll(/^BenchmarkBatch1000\S*\s+\d+\s+([\d.]+) ns\/op/gm)].map((m) => Number(m[1]));
  if (nsPerOp.length === 0) throw new Error(`no BenchmarkBatch1000 result in:\n${out}`);
  return median(nsPerOp) / BATCH;
}

export function benchRules(rounds = 3): RulesBench {
  const items = benchItems();
  const wasmCall = exportCall(items);
  const host = hostCall(items);
  const dir = mkdtempSync(path.join(tmpdir(), "go-stock-bench-"));
  const framePath = path.join(dir, "frame.bin");
  writeFileSync(framePath, encodeFrame(items));
  const samples: RulesBench["rounds"] = [];
  try {
    for (let r = 0; r < rounds; r++) samples.push({ wasm: nsPerSku(wasmCall), hostCall: nsPerSku(host), native: nativeNsPerSku(framePath) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const wasm = median(samples.map((x) => x.wasm));
  const hostCallNs = median(samples.map((x) => x.hostCall));
  const native = median(samples.map((x) => x.native));
  return { cpu: cpus()[0]?.model ?? "unknown", rounds: samples, wasmNsPerSku: wasm, hostCallNsPerSku: hostCallNs, nativeNsPerSku: native, ratio: wasm / native, hostCallRatio: hostCallNs / native };
}

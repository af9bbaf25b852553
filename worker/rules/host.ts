/**
 * Host side of the go-stock Wasm module (docs/wasm-abi.md): one instance per
 * isolate, one call per batch, one copy in and one copy out. The worker never
 * interprets records itself: record bytes go straight into Wasm memory and the
 * aggregate JSON comes straight back.
 */
import { createWasi, WasiExit } from "./wasi";

/** The ABI this host speaks; the module must report the same at start-up. */
export const ABI_VERSION = 2;

export type Source = "edge" | "regional";

export interface RulesInput {
  sku: string;
  region: string;
  /** Time the aggregate is computed for (ms since epoch). */
  now: number;
  /** Validity from `now` (ms), capped by the next price change. */
  ttlMs: number;
  source: Source;
  /** The record's MessagePack bytes as stored, or null when missing. */
  stock: Uint8Array | null;
  price: Uint8Array | null;
}

export type RulesOutput =
  /** `tags`: the tags the records decide (SPEC §9: promotions of the region not ended, eligible warehouses), space-separated, sorted. */
  | { ok: true; json: string; validUntil: number; nextAt: number | null; tags: string }
  | { ok: false; code: "not_found" | "invalid_record"; detail: string };

/** The module's exports (docs/wasm-abi.md). */
export interface RulesExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  abi_version(): number;
  input_buffer(n: number): number;
  aggregate_batch(n: number): bigint;
}

const SOURCE_BYTE: Record<Source, number> = { edge: 0, regional: 1 };
const ITEM_FIXED_BYTES = 8 + 4 + 1 + 2 + 2 + 4 + 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A failure of the module itself (bad ABI, trap): never a per-SKU outcome. */
export class RulesEngineError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RulesEngineError";
  }
}

/** A started instance of the module (WASI shim bound, Go runtime initialised) whose ABI this host speaks. */
export function instantiateRules(module: WebAssembly.Module): RulesExports {
  const wasi = createWasi(module);
  const exports = new WebAssembly.Instance(module, wasi.imports).exports as unknown as RulesExports;
  wasi.bind(exports.memory);
  exports._initialize();
  const abi = exports.abi_version();
  if (abi !== ABI_VERSION) {
    throw new RulesEngineError(`go-stock.wasm speaks ABI ${abi}, this worker needs ${ABI_VERSION}: rebuild with npm run build:wasm`);
  }
  return exports;
}

export class RulesEngine {
  private constructor(private readonly exports: RulesExports) {}

  /** Instantiates the module and checks its ABI version. */
  static create(module: WebAssembly.Module): RulesEngine {
    return new RulesEngine(instantiateRules(module));
  }

  /** Runs the rules for every item; per-SKU failures are results, not exceptions. */
  run(items: readonly RulesInput[]): RulesOutput[] {
    const frame = new FrameWriter(items);
    const ptr = this.exports.input_buffer(frame.maxSize);
    // Views are made after input_buffer: growing memory detaches older ones.
    const size = frame.writeTo(new Uint8Array(this.exports.memory.buffer, ptr, frame.maxSize));
    const packed = this.exports.aggregate_batch(size);
    return decodeOutput(this.exports.memory.buffer, Number(packed >> 32n), Number(packed & 0xffffffffn), items.length);
  }
}

/** The input frame of `items` as bytes (what `run` writes into Wasm memory; for benchmarks and tests). */
export function encodeFrame(items: readonly RulesInput[]): Uint8Array {
  const frame = new FrameWriter(items);
  const out = new Uint8Array(frame.maxSize);
  return out.slice(0, frame.writeTo(out));
}

/**
 * Writes the input frame of docs/wasm-abi.md straight into its destination.
 * The size is bounded first (a string takes at most 3 UTF-8 bytes per UTF-16
 * unit), so that nothing is encoded twice: SKU ids and regions are ASCII by
 * SPEC §5 and are copied char by char (a TextEncoder call per short string
 * cost more than the rest of the frame); a string with any other char goes
 * through TextEncoder.encodeInto. Times are written as two 32-bit halves:
 * a BigInt per item cost more than the rest of its header.
 */
class FrameWriter {
  /** An upper bound of the frame's size: what `writeTo` needs. */
  readonly maxSize: number;

  constructor(private readonly items: readonly RulesInput[]) {
    let size = 4;
    for (const it of items) {
      size += ITEM_FIXED_BYTES + 3 * (it.sku.length + it.region.length) + (it.stock?.length ?? 0) + (it.price?.length ?? 0);
    }
    this.maxSize = size;
  }

  /** Writes the frame at the start of `mem` (at least `maxSize` bytes) and returns its size. */
  writeTo(mem: Uint8Array): number {
    const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
    const items = this.items;
    dv.setUint32(0, items.length, true);
    let o = 4;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const now = it.now;
      if (now >= 0 && now <= Number.MAX_SAFE_INTEGER && Number.isInteger(now)) {
        dv.setUint32(o, now % 0x1_0000_0000, true);
        dv.setUint32(o + 4, Math.floor(now / 0x1_0000_0000), true);
      } else {
        dv.setBigInt64(o, BigInt(now), true); // a negative time as before; a fraction throws
      }
      dv.setUint32(o + 8, it.ttlMs, true);
      mem[o + 12] = SOURCE_BYTE[it.source];
      o = putText(mem, dv, it.sku, o + 13);
      o = putText(mem, dv, it.region, o);
      o = putRecord(mem, dv, it.stock, o);
      o = putRecord(mem, dv, it.price, o);
    }
    return o;
  }
}

/** Writes s with its u16 length at mem[o:], returns the end. */
function putText(mem: Uint8Array, dv: DataView, s: string, o: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) {
      const { written } = encoder.encodeInto(s, mem.subarray(o + 2));
      dv.setUint16(o, written, true);
      return o + 2 + written;
    }
    mem[o + 2 + i] = c;
  }
  dv.setUint16(o, n, true);
  return o + 2 + n;
}

/** Writes a record with its i32 length (-1 = missing) at mem[o:], returns the end. */
function putRecord(mem: Uint8Array, dv: DataView, b: Uint8Array | null, o: number): number {
  if (b === null) {
    dv.setInt32(o, -1, true);
    return o + 4;
  }
  dv.setInt32(o, b.length, true);
  mem.set(b, o + 4);
  return o + 4 + b.length;
}

/** The i64 at o as a number (rounded to the nearest double, as Number(bigint) does). */
function int64At(dv: DataView, o: number): number {
  return dv.getInt32(o + 4, true) * 0x1_0000_0000 + dv.getUint32(o, true);
}

function decodeOutput(buffer: ArrayBuffer, ptr: number, len: number, expected: number): RulesOutput[] {
  const dv = new DataView(buffer, ptr, len);
  const mem = new Uint8Array(buffer, ptr, len);
  let o = 0;
  const text = (): string => {
    const n = dv.getUint32(o, true);
    o += 4;
    const s = decoder.decode(mem.subarray(o, o + n));
    o += n;
    return s;
  };
  if (dv.getUint8(o++) !== 0) throw new RulesEngineError(`go-stock rejected the batch frame: ${text()}`);
  const count = dv.getUint32(o, true);
  o += 4;
  if (count !== expected) throw new RulesEngineError(`go-stock answered ${count} results for ${expected} items`);
  const out: RulesOutput[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const code = mem[o];
    const validUntil = int64At(dv, o + 1);
    const nextAt = int64At(dv, o + 9);
    o += 17;
    const body = text();
    const tags = text();
    if (code === 0) out[i] = { ok: true, json: body, validUntil, nextAt: nextAt < 0 ? null : nextAt, tags };
    else if (code === 1) out[i] = { ok: false, code: "not_found", detail: body };
    else if (code === 2) out[i] = { ok: false, code: "invalid_record", detail: body };
    else throw new RulesEngineError(`go-stock answered unknown result code ${code}`);
  }
  return out;
}

/**
 * The isolate's engine: created on first use, dropped and re-created after a
 * trap (a trapped Go instance fails later calls in odd ways). A batch that
 * traps is retried once on a fresh instance.
 */
export class RulesHost {
  private engine: RulesEngine | undefined;
  constructor(private readonly module: WebAssembly.Module) {}

  /** Instantiates the module now (start-up check of the ABI) if not done yet. */
  ensureLoaded(): void {
    this.engine ??= RulesEngine.create(this.module);
  }

  run(items: readonly RulesInput[]): RulesOutput[] {
    if (items.length === 0) return [];
    for (let attempt = 1; ; attempt++) {
      const engine = (this.engine ??= RulesEngine.create(this.module));
      try {
        return engine.run(items);
      } catch (e) {
        if (e instanceof RulesEngineError) throw e;
        // Anything else escaped the module (a trap, proc_exit): the instance is poisoned.
        this.engine = undefined;
        const trap = e instanceof WebAssembly.RuntimeError || e instanceof WasiExit;
        if (!trap || attempt >= 2) {
          throw new RulesEngineError(`go-stock failed on a batch (attempt ${attempt}): ${String(e)}`, { cause: e });
        }
      }
    }
  }
}

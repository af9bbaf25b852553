/**
 * Host side of the go-stock Wasm module (docs/wasm-abi.md): one instance per
 * isolate, one call per batch, one copy in and one copy out. The worker never
 * interprets records itself: record bytes go straight into Wasm memory and the
 * aggregate JSON comes straight back.
 */
import { createWasi, WasiExit } from "./wasi";

/** The ABI this host speaks; the module must report the same at start-up. */
export const ABI_VERSION = 1;

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
  | { ok: true; json: string; validUntil: number; nextAt: number | null }
  | { ok: false; code: "not_found" | "invalid_record"; detail: string };

interface Exports {
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

export class RulesEngine {
  private constructor(private readonly exports: Exports) {}

  /** Instantiates the module and checks its ABI version. */
  static create(module: WebAssembly.Module): RulesEngine {
    const wasi = createWasi(module);
    const instance = new WebAssembly.Instance(module, wasi.imports);
    const exports = instance.exports as unknown as Exports;
    wasi.bind(exports.memory);
    exports._initialize();
    const abi = exports.abi_version();
    if (abi !== ABI_VERSION) {
      throw new RulesEngineError(`go-stock.wasm speaks ABI ${abi}, this worker needs ${ABI_VERSION}: rebuild with npm run build:wasm`);
    }
    return new RulesEngine(exports);
  }

  /** Runs the rules for every item; per-SKU failures are results, not exceptions. */
  run(items: readonly RulesInput[]): RulesOutput[] {
    const skus = items.map((it) => encoder.encode(it.sku));
    const regions = items.map((it) => encoder.encode(it.region));
    let size = 4;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      size += ITEM_FIXED_BYTES + skus[i]!.length + regions[i]!.length + (it.stock?.length ?? 0) + (it.price?.length ?? 0);
    }
    const ptr = this.exports.input_buffer(size);
    // Views are made after input_buffer: growing memory detaches older ones.
    const mem = new Uint8Array(this.exports.memory.buffer);
    const dv = new DataView(this.exports.memory.buffer);
    let o = ptr;
    dv.setUint32(o, items.length, true);
    o += 4;
    const putBytes = (b: Uint8Array | null, withLen: "u16" | "i32"): void => {
      if (withLen === "u16") {
        dv.setUint16(o, b!.length, true);
        o += 2;
      } else {
        dv.setInt32(o, b === null ? -1 : b.length, true);
        o += 4;
      }
      if (b) {
        mem.set(b, o);
        o += b.length;
      }
    };
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      dv.setBigInt64(o, BigInt(it.now), true);
      dv.setUint32(o + 8, it.ttlMs, true);
      dv.setUint8(o + 12, SOURCE_BYTE[it.source]);
      o += 13;
      putBytes(skus[i]!, "u16");
      putBytes(regions[i]!, "u16");
      putBytes(it.stock, "i32");
      putBytes(it.price, "i32");
    }
    const packed = this.exports.aggregate_batch(size);
    return decodeOutput(this.exports.memory.buffer, Number(packed >> 32n), Number(packed & 0xffffffffn), items.length);
  }
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
    const code = dv.getUint8(o);
    const validUntil = Number(dv.getBigInt64(o + 1, true));
    const nextAt = Number(dv.getBigInt64(o + 9, true));
    o += 17;
    const body = text();
    if (code === 0) out[i] = { ok: true, json: body, validUntil, nextAt: nextAt < 0 ? null : nextAt };
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

  get loaded(): boolean {
    return this.engine !== undefined;
  }

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

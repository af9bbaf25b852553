/**
 * A minimal `wasi_snapshot_preview1` for the Go reactor, built from the
 * module's own import list: what Go calls gets a small honest implementation,
 * everything else answers ENOSYS.
 *
 * Why not a library shim: their `poll_oneoff` busy-waits on the clock, and a
 * deployed Worker's clock does not advance while code runs, so a Go timer
 * (or a dying panic) would hang the isolate. Here time is virtual: the clock
 * moves forward by whatever Go asks to sleep, and by 1 µs per reading so that
 * no loop waits forever.
 */

const ESUCCESS = 0;
const EBADF = 8;
const ENOSYS = 52;

const CLOCK_REALTIME = 0;
const EVENTTYPE_CLOCK = 0;
const SUBSCRIPTION_SIZE = 48;
const EVENT_SIZE = 32;
const SUBCLOCKFLAGS_ABSTIME = 1;

/** Thrown by `proc_exit`: the instance is dead and must be dropped. */
export class WasiExit extends Error {
  constructor(readonly code: number) {
    super(`wasm module exited with code ${code}`);
    this.name = "WasiExit";
  }
}

type WasiFn = (...args: (number | bigint)[]) => number;

export interface Wasi {
  imports: WebAssembly.Imports;
  /** Call once the instance exists: the shim reads and writes its memory. */
  bind(memory: WebAssembly.Memory): void;
}

export function createWasi(module: WebAssembly.Module, log: (line: string) => void = console.error): Wasi {
  let memory: WebAssembly.Memory | undefined;
  let virtualNs = 0n;
  const view = (): DataView => {
    if (!memory) throw new Error("wasi: memory not bound");
    return new DataView(memory.buffer);
  };
  const bytes = (ptr: number, len: number): Uint8Array => {
    if (!memory) throw new Error("wasi: memory not bound");
    return new Uint8Array(memory.buffer, ptr, len);
  };
  const now = (id: number): bigint => {
    virtualNs += 1000n;
    // Monotonic time starts at 0 for this instance; real time is wall clock + the virtual drift.
    return id === CLOCK_REALTIME ? BigInt(Date.now()) * 1_000_000n + virtualNs : virtualNs;
  };
  const decoder = new TextDecoder();
  let pendingOutput = "";

  const known: Record<string, WasiFn> = {
    clock_time_get(id, _precision, out) {
      view().setBigUint64(Number(out), now(Number(id)), true);
      return ESUCCESS;
    },
    clock_res_get(_id, out) {
      view().setBigUint64(Number(out), 1000n, true);
      return ESUCCESS;
    },
    random_get(ptr, len) {
      // getRandomValues fills at most 65,536 bytes per call.
      for (let off = 0; off < Number(len); off += 65_536) {
        crypto.getRandomValues(bytes(Number(ptr) + off, Math.min(65_536, Number(len) - off)));
      }
      return ESUCCESS;
    },
    args_sizes_get(argc, bufSize) {
      view().setUint32(Number(argc), 0, true);
      view().setUint32(Number(bufSize), 0, true);
      return ESUCCESS;
    },
    args_get: () => ESUCCESS,
    environ_sizes_get(count, bufSize) {
      view().setUint32(Number(count), 0, true);
      view().setUint32(Number(bufSize), 0, true);
      return ESUCCESS;
    },
    environ_get: () => ESUCCESS,
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => EBADF,
    fd_write(fd, iovs, iovsLen, nwritten) {
      if (fd !== 1 && fd !== 2) return EBADF;
      const dv = view();
      let total = 0;
      for (let i = 0; i < Number(iovsLen); i++) {
        const ptr = dv.getUint32(Number(iovs) + i * 8, true);
        const len = dv.getUint32(Number(iovs) + i * 8 + 4, true);
        pendingOutput += decoder.decode(bytes(ptr, len), { stream: true });
        total += len;
      }
      // Go's runtime writes a panic message in pieces: log whole lines only.
      const lines = pendingOutput.split("\n");
      pendingOutput = lines.pop() ?? "";
      for (const line of lines) log(`go-stock: ${line}`);
      dv.setUint32(Number(nwritten), total, true);
      return ESUCCESS;
    },
    poll_oneoff(inPtr, outPtr, nsubscriptions, neventsPtr) {
      const dv = view();
      let events = 0;
      for (let i = 0; i < Number(nsubscriptions); i++) {
        const sub = Number(inPtr) + i * SUBSCRIPTION_SIZE;
        if (dv.getUint8(sub + 8) !== EVENTTYPE_CLOCK) continue;
        const clockId = dv.getUint32(sub + 16, true);
        const timeout = dv.getBigUint64(sub + 24, true);
        const flags = dv.getUint16(sub + 40, true);
        const current = now(clockId);
        const wait = flags & SUBCLOCKFLAGS_ABSTIME ? timeout - current : timeout;
        if (wait > 0n) virtualNs += wait;
        const ev = Number(outPtr) + events * EVENT_SIZE;
        dv.setBigUint64(ev, dv.getBigUint64(sub, true), true); // userdata
        dv.setUint16(ev + 8, ESUCCESS, true);
        dv.setUint8(ev + 10, EVENTTYPE_CLOCK);
        events++;
      }
      dv.setUint32(Number(neventsPtr), events, true);
      return ESUCCESS;
    },
    sched_yield: () => ESUCCESS,
    proc_exit(code) {
      throw new WasiExit(Number(code));
    },
  };

  const wasi: Record<string, WasiFn> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module !== "wasi_snapshot_preview1" || imp.kind !== "function") continue;
    wasi[imp.name] = known[imp.name] ?? (() => ENOSYS);
  }
  return {
    imports: { wasi_snapshot_preview1: wasi },
    bind(m) {
      memory = m;
    },
  };
}

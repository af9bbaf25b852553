/**
 * Request coalescing for one isolate: however many requests miss the same
 * key at once, one computation runs and the others wait for its result.
 * A batch registers all of its keys at once, so a key already being computed
 * by another batch is awaited, not computed again.
 *
 * Waiters do not await the computing request's promise: in workerd the
 * continuation of a promise settled by another request can run in that
 * request's context, and a Response built there fails with "Cannot perform
 * I/O on behalf of a different request". Each waiter instead checks the
 * shared result on its own timers (1 ms, doubling to 16 ms), which always run
 * in its own request; the result is plain data, safe to share.
 */

interface Slot<T> {
  settled: boolean;
  settledAt?: number;
  value?: T;
  error?: unknown;
}

const MAX_POLL_MS = 16;

export class Coalescer<T> {
  private readonly inflight = new Map<string, Slot<T>>();

  constructor(
    /**
     * How long a settled result still answers newcomers (ms). A request whose
     * own wait (on its timers) ended just as a computation finished would
     * otherwise start a second one. Callers judge the result's freshness at
     * their own millisecond, so a grace never serves anything expired. @default 0
     */
    private readonly graceMs = 0,
    /**
     * How long a waiter waits for another request's computation (ms) before
     * it gives up on it and computes the keys itself: a leader whose request
     * was cancelled (its client gone) must not strand every later read of its
     * keys. @default Infinity
     */
    private readonly waitMs = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Results for every key: keys already in flight are awaited; the rest are
   * computed by one call of `compute`, which must answer every key it is given.
   */
  async batch(keys: readonly string[], compute: (keys: string[]) => Promise<Map<string, T>>): Promise<Map<string, T>> {
    const waiting: [string, Slot<T>][] = [];
    const mine: [string, Slot<T>][] = [];
    const now = Date.now();
    for (const k of new Set(keys)) {
      const slot = this.inflight.get(k);
      if (slot && (!slot.settled || now - slot.settledAt! <= this.graceMs)) waiting.push([k, slot]);
      else {
        const own: Slot<T> = { settled: false };
        this.inflight.set(k, own);
        mine.push([k, own]);
      }
    }
    const out = new Map<string, T>();
    if (mine.length > 0) {
      let results: Map<string, T> | undefined;
      let failure: unknown;
      try {
        results = await compute(mine.map(([k]) => k));
      } catch (e) {
        failure = e;
      }
      // Every slot settles before it leaves the map, success or failure.
      for (const [k, slot] of mine) {
        const v = results?.get(k);
        if (failure === undefined && v === undefined) slot.error = new Error(`coalesced computation gave no result for ${k}`);
        else if (failure !== undefined) slot.error = failure;
        else slot.value = v;
        slot.settled = true;
        slot.settledAt = Date.now();
        if (this.graceMs === 0 && this.inflight.get(k) === slot) this.inflight.delete(k);
      }
      if (this.graceMs > 0 && this.inflight.size > 256) this.sweep();
      for (const [k, slot] of mine) {
        if (slot.error !== undefined) throw slot.error;
        out.set(k, slot.value as T);
      }
    }
    const deadline = Date.now() + this.waitMs;
    for (let delay = 1; waiting.some(([, s]) => !s.settled) && Date.now() < deadline; delay = Math.min(MAX_POLL_MS, delay * 2)) {
      await new Promise((r) => setTimeout(r, delay));
    }
    const abandoned: string[] = [];
    for (const [k, slot] of waiting) {
      if (!slot.settled) {
        // Past the deadline: that computation is not coming; the slot is dropped and the key computed here.
        if (this.inflight.get(k) === slot) this.inflight.delete(k);
        abandoned.push(k);
        continue;
      }
      if (slot.error !== undefined) throw slot.error;
      out.set(k, slot.value as T);
    }
    if (abandoned.length > 0) for (const [k, v] of await this.batch(abandoned, compute)) out.set(k, v);
    return out;
  }

  /** Forgets settled results of `keys` (their data changed: a purge, a prewarm), so that no newcomer gets them in their grace. */
  forget(keys: readonly string[]): void {
    for (const k of keys) if (this.inflight.get(k)?.settled) this.inflight.delete(k);
  }

  /** Forgets every settled result (a purge whose keys are not known one by one). */
  forgetAll(): void {
    for (const [k, slot] of this.inflight) if (slot.settled) this.inflight.delete(k);
  }

  /** Drops settled slots past their grace. */
  private sweep(): void {
    const now = Date.now();
    for (const [k, slot] of this.inflight) if (slot.settled && now - slot.settledAt! > this.graceMs) this.inflight.delete(k);
  }
}

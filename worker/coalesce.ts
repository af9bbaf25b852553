/**
 * Request coalescing for one isolate: however many requests miss the same
 * key at once, one computation runs and the others wait for its result.
 * A batch registers all of its keys at once, so a key already being computed
 * by another batch is awaited, not computed again.
 */
export class Coalescer<T> {
  private readonly inflight = new Map<string, Promise<T>>();

  /** Keys being computed right now. */
  get size(): number {
    return this.inflight.size;
  }

  /**
   * Results for every key: keys already in flight are awaited; the rest are
   * computed by one call of `compute`, which must answer every key it is given.
   */
  async batch(keys: readonly string[], compute: (keys: string[]) => Promise<Map<string, T>>): Promise<Map<string, T>> {
    const waiting: [string, Promise<T>][] = [];
    const mine: string[] = [];
    for (const k of new Set(keys)) {
      const p = this.inflight.get(k);
      if (p) waiting.push([k, p]);
      else mine.push(k);
    }
    if (mine.length > 0) {
      const computation = compute(mine);
      for (const k of mine) {
        const p = computation.then((m) => {
          const v = m.get(k);
          if (v === undefined) throw new Error(`coalesced computation gave no result for ${k}`);
          return v;
        });
        // The entry goes as soon as its result is known, success or failure.
        const cleanup = (): void => {
          if (this.inflight.get(k) === p) this.inflight.delete(k);
        };
        p.then(cleanup, cleanup);
        this.inflight.set(k, p);
        waiting.push([k, p]);
      }
    }
    const out = new Map<string, T>();
    for (const [k, p] of waiting) out.set(k, await p);
    return out;
  }
}

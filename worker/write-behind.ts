/**
 * A request's queue of Cache API writes that follow hot-cache writes. A
 * bounded number run at once, so a 1,000-SKU prewarm does not put 1,000 cache
 * writes at once in front of other requests on the isolate's one thread;
 * past `maxQueued` waiting writes, new ones are dropped and counted (the hot
 * cache still serves those keys; other isolates compute them on a miss).
 * One queue per request: workerd does not let one request's I/O run in
 * another's.
 */
import { metrics } from "./metrics";

export class WriteBehind {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    /** Writes in flight at once. */
    readonly concurrency: number,
    /** Writes allowed to wait; more are dropped. */
    readonly maxQueued: number,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `write` when a slot is free; resolves when it is done (or at once when dropped). */
  async run(write: () => Promise<void>): Promise<void> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued) {
        metrics.cacheWrites.inc({ result: "dropped" });
        return;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      await write();
    } catch {
      // counted by the writer
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `running` stays as it is.
      if (next) next();
      else this.running--;
    }
  }
}

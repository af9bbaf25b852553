/**
 * A request's queue of Cache API writes that follow hot-cache writes. A
 * bounded number run at once (p-limit), so a 1,000-SKU prewarm does not put
 * 1,000 cache writes at once in front of other requests on the isolate's one
 * thread; past `maxQueued` waiting writes, new ones are dropped and counted
 * (the hot cache still serves those keys; other isolates compute them on a
 * miss). One queue per request: workerd does not let one request's I/O run in
 * another's.
 */
import pLimit, { type LimitFunction } from "p-limit";
import { metrics } from "../metrics";

export class WriteBehind {
  private readonly limit: LimitFunction;

  constructor(
    /** Writes in flight at once. */
    concurrency: number,
    /** Writes allowed to wait; more are dropped. */
    private readonly maxQueued: number,
  ) {
    this.limit = pLimit(concurrency);
  }

  /** Runs `write` when a slot is free; resolves when it is done (or at once when dropped). Never rejects: the writer counts its own failures. */
  run(write: () => Promise<void>): Promise<void> {
    if (this.limit.activeCount >= this.limit.concurrency && this.limit.pendingCount >= this.maxQueued) {
      metrics.cacheWrites.inc({ result: "dropped" });
      return Promise.resolve();
    }
    return this.limit(write).catch(() => undefined);
  }
}

/** A bounded wait for the scheduler: the engine's, the ops API's, a watcher's and a fleet purge's. */
import { TaskCancelledError, timeout, TimeoutStrategy } from "cockatiel";

/** Resolves or rejects with `p`, or rejects with `onTimeout()` after `ms` (cockatiel's aggressive timeout). */
export async function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  try {
    return await timeout(ms, TimeoutStrategy.Aggressive).execute(() => p);
  } catch (e) {
    throw e instanceof TaskCancelledError ? onTimeout() : e;
  }
}

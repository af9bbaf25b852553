/** Watching a run: polls the run store and draws a progress bar per node (cli-progress) on a terminal. */
import { MultiBar, Presets } from "cli-progress";
import { describeRedis } from "../config/config";
import { SchedulerRedisError, type Engine } from "../runs/engine";
import { within } from "../redis/within";
import type { RunReport } from "../runs/run-store";

export interface WatchOptions {
  /** Draw bars (only on a TTY). */
  bars: boolean;
  pollMs?: number;
}

/**
 * Resolves with the final report once the run is finished or closed. Past
 * the run's deadline the watcher closes it itself, so it never waits on
 * batches no process works on; if the scheduler's Redis does not answer for
 * `redisTimeoutMs`, it rejects with an error naming it.
 */
export async function watchRun(engine: Engine, runId: string, o: WatchOptions): Promise<RunReport> {
  const poll = o.pollMs ?? 250;
  const bounded = <T>(p: Promise<T>): Promise<T> =>
    within(p, engine.cfg.redisTimeoutMs, () => new SchedulerRedisError(`the scheduler's Redis ${describeRedis(engine.cfg.redis)} did not answer within ${engine.cfg.redisTimeoutMs} ms while watching run ${runId}; the run goes on: see \`prewarm status ${runId}\``));
  const report = async (latencies = false): Promise<RunReport> => {
    const r = await bounded(engine.store.report(runId, { latencies }));
    if (r === null) throw new Error(`no run ${runId}`);
    return r;
  };
  let r = await report();
  const multi = o.bars && process.stderr.isTTY ? new MultiBar({ format: " {node} |{bar}| {percentage}% {value}/{total} SKUs | warmed {warmed} failed {failed}", hideCursor: true, clearOnComplete: false }, Presets.shades_classic) : null;
  const bars = new Map<string, ReturnType<MultiBar["create"]> | undefined>();
  try {
    for (;;) {
      for (const n of r.nodes) {
        if (!bars.has(n.name)) bars.set(n.name, multi?.create(r.totalSkus, 0, { node: n.name.padEnd(12), warmed: 0, failed: 0 }));
        bars.get(n.name)?.update(n.skus, { warmed: n.warmed, failed: n.failed });
      }
      if (r.finishedAt !== null) return report(true);
      if (await bounded(engine.closeRunIfOverdue(runId))) r = await report();
      else {
        await new Promise((res) => setTimeout(res, poll));
        r = await report();
      }
    }
  } finally {
    multi?.stop();
  }
}

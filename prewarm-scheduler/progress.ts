/** Watching a run: polls the run store and draws a progress bar per node (cli-progress) on a terminal. */
import { MultiBar, Presets } from "cli-progress";
import type { RunReport, RunStore } from "./run-store";

export interface WatchOptions {
  /** Draw bars (only on a TTY). */
  bars: boolean;
  pollMs?: number;
  /** Give up waiting this long after the run's deadline (batches that no process works on). @default 30000 */
  graceMs?: number;
}

/** Resolves with the final report when every batch of the run is settled, or with the last one when the wait gives up. */
export async function watchRun(store: RunStore, runId: string, o: WatchOptions): Promise<RunReport> {
  const poll = o.pollMs ?? 250;
  let report: RunReport | null = null;
  for (let waited = 0; report === null; waited += poll) {
    report = await store.report(runId);
    if (report === null) {
      if (waited > 60_000) throw new Error(`run ${runId} has not started: is a scheduler worker running?`);
      await new Promise((r) => setTimeout(r, poll));
    }
  }
  const multi = o.bars && process.stderr.isTTY ? new MultiBar({ format: " {node} |{bar}| {percentage}% {value}/{total} SKUs | warmed {warmed} failed {failed}", hideCursor: true, clearOnComplete: false }, Presets.shades_classic) : null;
  const bars = new Map(report.nodes.map((n) => [n.name, multi?.create(report!.totalSkus, 0, { node: n.name.padEnd(12), warmed: 0, failed: 0 })]));
  try {
    for (;;) {
      for (const n of report.nodes) bars.get(n.name)?.update(n.skus, { warmed: n.warmed, failed: n.failed });
      if (report.finishedAt !== null || Date.now() > report.deadline + (o.graceMs ?? 30_000)) return report;
      await new Promise((r) => setTimeout(r, poll));
      report = (await store.report(runId)) ?? report;
    }
  } finally {
    multi?.stop();
  }
}

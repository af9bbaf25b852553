/** The per-node report of a run, as text for a terminal (the JSON form is the RunReport itself). */
import type { RunReport } from "../runs/run-store";

function ms(v: number | null): string {
  return v === null ? "-" : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n");
}

export function formatReport(r: RunReport): string {
  const rows = [["node", "region", "warmed", "from edge", "from regional", "failed", "unsent", "duration", "batch p50", "batch p95"]];
  for (const n of r.nodes) {
    rows.push([n.name, n.region, String(n.warmed), String(n.fromEdge), String(n.fromRegional), String(n.failed), String(n.superseded), ms(n.durationMs), ms(n.p50Ms), ms(n.p95Ms)]);
  }
  const lines = [
    `run ${r.runId} (plan ${r.plan}, ${r.trigger}): ${r.status}` + (r.finishedAt ? ` in ${ms(r.finishedAt - r.createdAt)}` : ""),
    ...(r.reason ? [`  ${r.reason}`] : []),
    `${r.totalSkus} SKUs x ${r.nodes.length} nodes: ${r.warmed} warmed, ${r.failed} failed` + (r.superseded > 0 ? `, ${r.superseded} left unsent` : ""),
    ...(r.superseded > 0
      ? [`  ${r.superseded} SKUs were not warmed by this run: a newer run of the plan superseded its unsent batches (${r.nodes.filter((n) => n.superseded > 0).map((n) => `${n.name} ${n.superseded}`).join(", ")}), and sends them first`]
      : []),
    "",
    ...(r.nodes.length > 0 ? [table(rows)] : []),
  ];
  const slowed = r.nodes.filter((n) => n.pacedMs > 0 || Object.keys(n.slowed).length > 0);
  if (slowed.length > 0) {
    lines.push("", "paced and slowed down (protecting the nodes and their region):");
    for (const n of slowed) {
      const why = Object.entries(n.slowed).map(([reason, k]) => `${k} x ${reason}`).join(", ");
      lines.push(`  ${n.name}: waited ${ms(n.pacedMs)} for its pace${why ? `; slowed down after ${why}` : ""}`);
    }
  }
  const failures = r.nodes.filter((n) => n.failed > 0);
  if (failures.length > 0) {
    lines.push("", "failed by code:");
    for (const n of failures) {
      lines.push(`  ${n.name}: ${Object.entries(n.failedByCode).map(([c, k]) => `${c} ${k}`).join(", ")}` + (n.batchesFailed > 0 ? ` (${n.batchesFailed} whole batches)` : ""));
    }
  }
  return lines.join("\n");
}

/** SKUs per second over the whole run, all nodes together. */
export function skusPerSecond(r: RunReport): number | null {
  if (!r.finishedAt) return null;
  return ((r.warmed + r.failed) / Math.max(1, r.finishedAt - r.createdAt)) * 1000;
}

/**
 * A run's status as the CLI's exit code, the same for `prewarm run` and
 * `prewarm status`: 0 done (failures within the plan's failureThreshold), 1
 * failed (over it, or closed before its plan was expanded), 4 superseded
 * (SKUs left unsent to a newer run of the plan), 5 still running (only
 * `prewarm status` without --watch sees one).
 */
export function runExitCode(status: RunReport["status"]): number {
  switch (status) {
    case "done":
      return 0;
    case "failed":
      return 1;
    case "superseded":
      return 4;
    case "running":
      return 5;
  }
}

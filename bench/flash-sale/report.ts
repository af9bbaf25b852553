/** Summaries, goals, the Markdown report and the chart (SVG) of the flash-sale runs. */
import { median, percentile, spread } from "../stats";
import type { FlashCatalogue } from "./catalogue";
import type { Sample } from "./traffic";

export type Mode = "cold" | "prewarmed" | "changes";

/** A change of a hot SKU's records, acknowledged by the edge Redis at `at`. */
export interface Change {
  sku: string;
  version: number;
  at: number;
}

export interface Window {
  requests: number;
  hitRatio: number;
  p50: number;
  p99: number;
}

export interface RunSummary {
  label: string;
  mode: Mode;
  rep: number;
  requests: number;
  errors: number;
  /** Non-200 answers by status (0 = no answer). */
  errorsByStatus: Record<string, number>;
  all: Window & { p95: number; p999: number };
  burst: Window;
  /** Over the whole traffic. */
  regionalRequests: number;
  regionalRequestsInBurst: number;
  regionalPer1000Reads: number;
  /** Edge Redis record reads over the whole traffic (node totals). */
  recordReads: number;
  /** 200 answers whose price or stock is not one in force at the answer's time. */
  wrong: number;
  /** Of those, answers sent more than 1 s after a change that still carried an older version. */
  staleAfterChange: number;
  wrongExamples: { sku: string; sentAt: number; receivedAt: number; price: number | null; available: number | null }[];
  /** Ready share from `prewarm verify` before T0 (prewarmed runs). */
  readinessPct: number | null;
  series: { t: number; requests: number; hitRatio: number; p50: number; p99: number }[];
}

function windowOf(samples: readonly Sample[]): Window & { p95: number; p999: number } {
  const lat = samples.map((s) => s.receivedAt - s.sentAt).sort((a, b) => a - b);
  const ok = samples.filter((s) => s.status === 200);
  return {
    requests: samples.length,
    hitRatio: ok.length === 0 ? 0 : ok.filter((s) => s.cache === "HIT").length / ok.length,
    p50: percentile(lat, 50),
    p95: percentile(lat, 95),
    p99: percentile(lat, 99),
    p999: percentile(lat, 99.9),
  };
}

/**
 * Whether an answer is right: its price and stock are those of some change
 * version in force between (send − 1 s) and its receipt (a change may take a
 * second to reach the node), at its send or receive instant (a promotion
 * boundary is exact). Without changes: the price in force at send or receive.
 */
function judge(cat: FlashCatalogue, changes: readonly Change[], s: Sample): "right" | "stale" | "wrong" {
  const mine = changes.filter((c) => c.sku === s.sku);
  const versionAt = (t: number): number => mine.reduce((v, c) => (c.at <= t ? Math.max(v, c.version) : v), 0);
  const matches = (v: number): boolean =>
    [s.sentAt, s.receivedAt].some((t) => {
      const e = cat.expected(s.sku, t, v);
      return e.price === s.price && e.available === s.available;
    });
  for (let v = versionAt(s.sentAt - 1000); v <= versionAt(s.receivedAt); v++) if (matches(v)) return "right";
  for (let v = 0; v < versionAt(s.sentAt - 1000); v++) if (matches(v)) return "stale";
  return "wrong";
}

export function summarize(
  label: string,
  mode: Mode,
  rep: number,
  samples: readonly Sample[],
  cat: FlashCatalogue,
  t0: number,
  burst: { from: number; to: number },
  extra: { regionalRequests: number; regionalRequestsInBurst: number; recordReads: number; readinessPct: number | null; changes: readonly Change[] },
): RunSummary {
  const ok = samples.filter((s) => s.status === 200);
  const inBurst = samples.filter((s) => s.sentAt >= t0 + burst.from && s.sentAt < t0 + burst.to);
  const verdicts = ok.map((s) => ({ s, v: judge(cat, extra.changes, s) }));
  const bad = verdicts.filter((x) => x.v !== "right");
  const series: RunSummary["series"] = [];
  const first = samples.reduce((m, s) => Math.min(m, s.sentAt), Infinity);
  const last = samples.reduce((m, s) => Math.max(m, s.sentAt), -Infinity);
  for (let b = Math.floor((first - t0) / 500) * 500; b <= last - t0; b += 500) {
    const inB = samples.filter((s) => s.sentAt - t0 >= b && s.sentAt - t0 < b + 500);
    if (inB.length === 0) continue;
    const w = windowOf(inB);
    series.push({ t: b / 1000, requests: inB.length, hitRatio: w.hitRatio, p50: w.p50, p99: w.p99 });
  }
  const all = windowOf(samples);
  const b = windowOf(inBurst);
  return {
    label,
    mode,
    rep,
    requests: samples.length,
    errors: samples.length - ok.length,
    errorsByStatus: samples.filter((s) => s.status !== 200).reduce<Record<string, number>>((m, s) => ({ ...m, [s.status]: (m[s.status] ?? 0) + 1 }), {}),
    all,
    burst: { requests: b.requests, hitRatio: b.hitRatio, p50: b.p50, p99: b.p99 },
    regionalRequests: extra.regionalRequests,
    regionalRequestsInBurst: extra.regionalRequestsInBurst,
    regionalPer1000Reads: (1000 * extra.regionalRequests) / Math.max(1, samples.length),
    recordReads: extra.recordReads,
    wrong: bad.length,
    staleAfterChange: bad.filter((x) => x.v === "stale").length,
    wrongExamples: bad.slice(0, 10).map(({ s }) => ({ sku: s.sku, sentAt: s.sentAt, receivedAt: s.receivedAt, price: s.price, available: s.available })),
    readinessPct: extra.readinessPct,
    series,
  };
}

export interface Goal {
  name: string;
  measured: string;
  goal: string;
  met: boolean;
}

const byMode = (runs: readonly RunSummary[], mode: Mode): RunSummary[] => runs.filter((r) => r.mode === mode);
const med = (runs: readonly RunSummary[], f: (r: RunSummary) => number): number => median(runs.map(f));
const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;

export function goals(runs: readonly RunSummary[]): Goal[] {
  const cold = byMode(runs, "cold");
  const warm = byMode(runs, "prewarmed");
  const changed = byMode(runs, "changes");
  const warmish = [...warm, ...changed];
  const out: Goal[] = [
    {
      name: "prewarmed, during the burst: hit ratio (worst run)",
      measured: `${pct(Math.min(...warm.map((r) => r.burst.hitRatio)))} (runs ${warm.map((r) => pct(r.burst.hitRatio)).join(", ")})`,
      goal: "≥ 99.9 %",
      met: warm.every((r) => r.burst.hitRatio >= 0.999),
    },
    {
      name: "prewarmed, during the burst: regional requests (every run)",
      measured: warm.map((r) => r.regionalRequestsInBurst).join(", "),
      goal: "0",
      met: warm.every((r) => r.regionalRequestsInBurst === 0),
    },
    {
      name: "prewarmed, over the whole traffic: edge Redis record reads (every run)",
      measured: warm.map((r) => r.recordReads).join(", "),
      goal: "0",
      met: warm.every((r) => r.recordReads === 0),
    },
    {
      name: "prewarmed p99 against cold p99 in the burst, same traffic (medians of the runs)",
      measured: `${med(warm, (r) => r.burst.p99)} ms vs ${med(cold, (r) => r.burst.p99)} ms = ${(med(warm, (r) => r.burst.p99) / Math.max(1, med(cold, (r) => r.burst.p99))).toFixed(2)}x (prewarmed ${spread(warm.map((r) => r.burst.p99))} ms, cold ${spread(cold.map((r) => r.burst.p99))} ms)`,
      goal: "≤ 0.33x",
      met: med(warm, (r) => r.burst.p99) * 3 <= med(cold, (r) => r.burst.p99),
    },
    {
      name: "wrong prices or stock, every answer of every run",
      measured: `${runs.reduce((s, r) => s + r.wrong, 0)} of ${runs.reduce((s, r) => s + r.requests - r.errors, 0)}`,
      goal: "0",
      met: runs.every((r) => r.wrong === 0),
    },
    {
      name: "change run: answers sent more than 1 s after a change that do not carry it",
      measured: changed.map((r) => r.staleAfterChange).join(", "),
      goal: "0",
      met: changed.every((r) => r.staleAfterChange === 0),
    },
    {
      name: "readiness verified before T0 (prewarm verify, every prewarmed run)",
      measured: warmish.map((r) => (r.readinessPct === null ? "-" : `${r.readinessPct.toFixed(2)} %`)).join(", "),
      goal: "100 %",
      met: warmish.every((r) => r.readinessPct === 100),
    },
  ];
  for (const [mode, rs] of [["cold", cold], ["prewarmed", warm], ["changes", changed]] as const) {
    out.push({ name: `regional requests per 1,000 reads, ${mode} (median of runs)`, measured: `${med(rs, (r) => r.regionalPer1000Reads).toFixed(2)} (${spread(rs.map((r) => r.regionalPer1000Reads), (x) => x.toFixed(2))})`, goal: "reported", met: true });
  }
  return out;
}

export function markdown(runs: readonly RunSummary[], gs: readonly Goal[], meta: Record<string, unknown>): string {
  const lines = [
    "# Flash-sale load test",
    "",
    Object.entries(meta).map(([k, v]) => `* ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("\n"),
    "",
    "| goal | measured | goal | |",
    "|---|---|---|---|",
    ...gs.map((g) => `| ${g.name} | ${g.measured} | ${g.goal} | ${g.goal === "reported" ? "" : g.met ? "**met**" : "**missed**"} |`),
    "",
    "| run | requests | errors | hit ratio | burst hit ratio | p50 | p99 | burst p99 | p99.9 | regional requests (burst) | per 1,000 reads | record reads | wrong | readiness |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...runs.map(
      (r) =>
        `| ${r.label} | ${r.requests} | ${r.errors}${r.errors > 0 ? ` (${Object.entries(r.errorsByStatus).map(([k, v]) => `${k}: ${v}`).join(", ")})` : ""} | ${pct(r.all.hitRatio)} | ${pct(r.burst.hitRatio)} | ${r.all.p50} ms | ${r.all.p99} ms | ${r.burst.p99} ms | ${r.all.p999} ms | ${r.regionalRequests} (${r.regionalRequestsInBurst}) | ${r.regionalPer1000Reads.toFixed(2)} | ${r.recordReads} | ${r.wrong} | ${r.readinessPct === null ? "-" : `${r.readinessPct.toFixed(2)} %`} |`,
    ),
    "",
    "Latency and hit ratio over time: flash-sale.svg (t = 0 is T0). Latency is from each request's scheduled instant.",
    "An answer is right when its price and stock are those in force at its send or receive instant; after a change, the previous version is accepted for 1 s.",
  ];
  return `${lines.join("\n")}\n`;
}

const COLORS: Record<Mode, string> = { cold: "#d62728", prewarmed: "#1f77b4", changes: "#2ca02c" };

/** Two panels, p99 latency and hit ratio against time from T0, one line per run (colour by mode). */
export function chart(runs: readonly RunSummary[]): string {
  const W = 760;
  const H = 220;
  const pad = 50;
  const all = runs.flatMap((r) => r.series);
  const tMin = Math.min(...all.map((p) => p.t));
  const tMax = Math.max(...all.map((p) => p.t)) + 0.5;
  const yMax = Math.max(10, percentile(all.map((p) => p.p99).sort((a, b) => a - b), 99));
  const x = (t: number): number => pad + ((t - tMin) / (tMax - tMin)) * (W - 2 * pad);
  const ticks = (y0: number): string => {
    let out = "";
    for (let t = Math.ceil(tMin / 2) * 2; t <= tMax; t += 2) out += `<line x1="${x(t)}" y1="${y0}" x2="${x(t)}" y2="${y0 + 4}" stroke="#888"/><text x="${x(t) - 6}" y="${y0 + 15}" font-size="10">${t}</text>`;
    return out;
  };
  const panel = (top: number, title: string, y: (p: RunSummary["series"][number]) => number, max: number, unit: string): string => {
    const yy = (v: number): number => top + H - pad / 2 - (Math.min(v, max) / max) * (H - pad);
    const lines = runs
      .map((r) => `<polyline fill="none" stroke="${COLORS[r.mode]}" stroke-opacity="0.7" stroke-width="1.5" points="${r.series.map((p) => `${x(p.t).toFixed(1)},${yy(y(p)).toFixed(1)}`).join(" ")}"/>`)
      .join("");
    return `<text x="${pad}" y="${top + 14}" font-size="13">${title}</text>
<line x1="${pad}" y1="${yy(0)}" x2="${W - pad}" y2="${yy(0)}" stroke="#888"/><line x1="${pad}" y1="${yy(0)}" x2="${pad}" y2="${yy(max)}" stroke="#888"/>
<text x="4" y="${yy(max) + 4}" font-size="11">${max.toFixed(max < 2 ? 1 : 0)}${unit}</text><text x="4" y="${yy(0)}" font-size="11">0</text>
<line x1="${x(0)}" y1="${yy(0)}" x2="${x(0)}" y2="${yy(max)}" stroke="#555" stroke-dasharray="4 3"/><text x="${x(0) + 3}" y="${yy(max) + 10}" font-size="11" fill="#555">T0</text>
${ticks(yy(0))}
${lines}`;
  };
  const legend = (Object.keys(COLORS) as Mode[]).map((m, i) => `<text x="${W - 220}" y="${20 + 16 * i}" font-size="12" fill="${COLORS[m]}">— ${m} (${runs.filter((r) => r.mode === m).length} runs)</text>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 30}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${legend}
${panel(0, "p99 latency (ms) by 500 ms of scheduled send time (clipped at the 99th percentile of points)", (p) => p.p99, yMax, " ms")}
${panel(H, "hit ratio (X-Cache: HIT)", (p) => p.hitRatio, 1, "")}
<text x="${W / 2 - 60}" y="${2 * H + 20}" font-size="12">seconds from T0</text>
</svg>
`;
}

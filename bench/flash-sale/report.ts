/** Summaries, time series and the chart (SVG) of a flash-sale run. */
import { percentile } from "../stats";
import type { FlashCatalogue } from "./catalogue";
import type { Sample } from "./traffic";

export interface RunSummary {
  label: string;
  requests: number;
  errors: number;
  /** Non-200 answers by status (0 = no answer). */
  errorsByStatus: Record<string, number>;
  hitRatio: number;
  latencyMs: { p50: number; p95: number; p99: number; p999: number };
  redisGets: number;
  regionalRequests: number;
  regionalSkus: number;
  burst: { requests: number; wrongPrice: number; examples: { sku: string; sentAt: number; receivedAt: number; price: number | null }[] };
  series: { t: number; requests: number; hitRatio: number; p50: number; p99: number }[];
}

export function summarize(label: string, samples: readonly Sample[], cat: FlashCatalogue, t0: number, counters: { redisGets: number; regionalRequests: number; regionalSkus: number }): RunSummary {
  const lat = samples.map((s) => s.receivedAt - s.sentAt).sort((a, b) => a - b);
  const ok = samples.filter((s) => s.status === 200);
  const burst = samples.filter((s) => s.sentAt >= t0 - 1000 && s.sentAt < t0 + 4000);
  const wrong = burst.filter((s) => s.status === 200 && s.price !== cat.priceAt(s.sku, s.sentAt) && s.price !== cat.priceAt(s.sku, s.receivedAt));
  const series: RunSummary["series"] = [];
  const start = samples[0]?.sentAt ?? t0;
  for (let b = Math.floor((start - t0) / 500) * 500; b < (samples.at(-1)?.sentAt ?? t0) - t0; b += 500) {
    const inB = samples.filter((s) => s.sentAt - t0 >= b && s.sentAt - t0 < b + 500);
    if (inB.length === 0) continue;
    const l = inB.map((s) => s.receivedAt - s.sentAt).sort((x, y) => x - y);
    series.push({ t: b / 1000, requests: inB.length, hitRatio: inB.filter((s) => s.cache === "HIT").length / inB.length, p50: percentile(l, 50), p99: percentile(l, 99) });
  }
  return {
    label,
    requests: samples.length,
    errors: samples.length - ok.length,
    errorsByStatus: samples.filter((s) => s.status !== 200).reduce<Record<string, number>>((m, s) => ({ ...m, [s.status]: (m[s.status] ?? 0) + 1 }), {}),
    hitRatio: ok.length === 0 ? 0 : ok.filter((s) => s.cache === "HIT").length / ok.length,
    latencyMs: { p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), p999: percentile(lat, 99.9) },
    ...counters,
    burst: { requests: burst.length, wrongPrice: wrong.length, examples: wrong.slice(0, 10).map((s) => ({ sku: s.sku, sentAt: s.sentAt, receivedAt: s.receivedAt, price: s.price })) },
    series,
  };
}

export function markdown(runs: readonly RunSummary[], meta: Record<string, unknown>): string {
  const lines = [
    "# Flash-sale load test",
    "",
    Object.entries(meta).map(([k, v]) => `* ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("\n"),
    "",
    "| run | requests | errors | hit ratio | p50 | p95 | p99 | p99.9 | edge Redis GETs | regional requests (SKUs) | burst answers | wrong price in burst |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...runs.map(
      (r) =>
        `| ${r.label} | ${r.requests} | ${r.errors}${r.errors > 0 ? ` (${Object.entries(r.errorsByStatus).map(([k, v]) => `${k}: ${v}`).join(", ")})` : ""} | ${(r.hitRatio * 100).toFixed(1)} % | ${r.latencyMs.p50} ms | ${r.latencyMs.p95} ms | ${r.latencyMs.p99} ms | ${r.latencyMs.p999} ms | ${r.redisGets} | ${r.regionalRequests} (${r.regionalSkus}) | ${r.burst.requests} | ${r.burst.wrongPrice} |`,
    ),
    "",
    "Latency and hit ratio over time: flash-sale.svg (t = 0 is T0; the burst runs from −1 s to +4 s).",
    "A burst answer has the right price when it equals the price in force at its send or at its receive time.",
  ];
  return `${lines.join("\n")}\n`;
}

/** Two panels, p99 latency and hit ratio against time from T0, one line per run. */
export function chart(runs: readonly RunSummary[]): string {
  const W = 760;
  const H = 220;
  const pad = 50;
  const colors = ["#d62728", "#1f77b4"];
  const all = runs.flatMap((r) => r.series);
  const tMin = Math.min(...all.map((p) => p.t));
  const tMax = Math.max(...all.map((p) => p.t)) + 0.5;
  const yMax = Math.max(10, ...all.map((p) => p.p99));
  const x = (t: number): number => pad + ((t - tMin) / (tMax - tMin)) * (W - 2 * pad);
  const panel = (top: number, title: string, y: (p: RunSummary["series"][number]) => number, max: number, unit: string): string => {
    const yy = (v: number): number => top + H - pad / 2 - (v / max) * (H - pad);
    const lines = runs
      .map((r, i) => `<polyline fill="none" stroke="${colors[i % 2]}" stroke-width="2" points="${r.series.map((p) => `${x(p.t).toFixed(1)},${yy(y(p)).toFixed(1)}`).join(" ")}"/>`)
      .join("");
    return `<text x="${pad}" y="${top + 14}" font-size="13">${title}</text>
<line x1="${pad}" y1="${yy(0)}" x2="${W - pad}" y2="${yy(0)}" stroke="#888"/><line x1="${pad}" y1="${yy(0)}" x2="${pad}" y2="${yy(max)}" stroke="#888"/>
<text x="4" y="${yy(max) + 4}" font-size="11">${max.toFixed(max < 2 ? 1 : 0)}${unit}</text><text x="4" y="${yy(0)}" font-size="11">0</text>
<line x1="${x(0)}" y1="${yy(0)}" x2="${x(0)}" y2="${yy(max)}" stroke="#2ca02c" stroke-dasharray="4 3"/><text x="${x(0) + 3}" y="${yy(max) + 10}" font-size="11" fill="#2ca02c">T0</text>
${ticks(yy(0))}
${lines}`;
  };
  const ticks = (y0: number): string => {
    let out = "";
    for (let t = Math.ceil(tMin / 2) * 2; t <= tMax; t += 2) out += `<line x1="${x(t)}" y1="${y0}" x2="${x(t)}" y2="${y0 + 4}" stroke="#888"/><text x="${x(t) - 6}" y="${y0 + 15}" font-size="10">${t}</text>`;
    return out;
  };
  const legend = runs.map((r, i) => `<text x="${W - 200}" y="${20 + 16 * i}" font-size="12" fill="${colors[i % 2]}">— ${r.label}</text>`).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 30}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${legend}
${panel(0, "p99 latency (ms) by 500 ms of send time", (p) => p.p99, yMax, " ms")}
${panel(H, "hit ratio (X-Cache: HIT)", (p) => p.hitRatio, 1, "")}
<text x="${W / 2 - 60}" y="${2 * H + 20}" font-size="12">seconds from T0</text>
</svg>
`;
}

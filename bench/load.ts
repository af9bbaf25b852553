/** One autocannon run against a URL: requests/s and latency percentiles (ms). */
import autocannon from "autocannon";
import { median } from "./stats";

export interface LoadResult {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export async function load(url: string, o: { connections?: number; seconds?: number } = {}): Promise<LoadResult> {
  const r = await autocannon({ url, connections: o.connections ?? 10, duration: o.seconds ?? 5 });
  return { reqPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

/**
 * Measures `subject` and `baseline` alternately, `rounds` times each, so the
 * noise of a shared machine hits both alike; returns the median of each and
 * each round's req/s ratio (subject / baseline: their spread is the noise a
 * difference must exceed to be measured).
 */
export async function interleaved(subject: string, baseline: string, rounds = 3, seconds = 5): Promise<{ subject: LoadResult; baseline: LoadResult; ratios: number[] }> {
  const s: LoadResult[] = [];
  const b: LoadResult[] = [];
  await load(subject, { seconds: 1 }); // warm-up: JIT, connections
  await load(baseline, { seconds: 1 });
  for (let i = 0; i < rounds; i++) {
    s.push(await load(subject, { seconds }));
    b.push(await load(baseline, { seconds }));
  }
  const med = (xs: LoadResult[]): LoadResult => {
    const m = (k: keyof LoadResult): number => median(xs.map((x) => x[k]));
    return { reqPerSec: m("reqPerSec"), p50: m("p50"), p99: m("p99"), errors: xs.reduce((n, x) => n + x.errors, 0), non2xx: xs.reduce((n, x) => n + x.non2xx, 0) };
  };
  return { subject: med(s), baseline: med(b), ratios: s.map((x, i) => x.reqPerSec / b[i]!.reqPerSec) };
}

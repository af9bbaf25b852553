/**
 * Handles on the real parts around the worker under test: the regional
 * aggregator (faults, counters), the edge Redis (stop/start), the worker's
 * own /metrics.
 */
import { SELF } from "cloudflare:test";
import { inject } from "vitest";

async function post(url: string, body?: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: body === undefined ? null : JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  await res.body?.cancel();
}

export const regional = {
  setFaults: (faults: Record<string, unknown>): Promise<void> => post(`${inject("regionalUrl")}/admin/faults`, faults),
  resetFaults: (): Promise<void> => post(`${inject("regionalUrl")}/admin/faults/reset`),
  /** regional_skus_total and the sum of regional_requests_total. */
  async counters(): Promise<{ requests: number; skus: number }> {
    const text = await (await fetch(`${inject("regionalUrl")}/metrics`)).text();
    const requests = [...text.matchAll(/^regional_requests_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const skus = Number(/^regional_skus_total (\d+)$/m.exec(text)?.[1] ?? 0);
    return { requests, skus };
  },
};

export const edgeRedis = {
  stop: (): Promise<void> => post(`${inject("controlUrl")}/edge-redis/stop`),
  start: (): Promise<void> => post(`${inject("controlUrl")}/edge-redis/start`),
};

/** One sample of the worker's /metrics, e.g. metric('edge_regional_requests_total{outcome="timeout"}'). */
export async function metric(series: string): Promise<number> {
  const text = await (await SELF.fetch("https://edge.test/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

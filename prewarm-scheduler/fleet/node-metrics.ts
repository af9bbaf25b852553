/**
 * What the console's fleet page shows of a node's own `/metrics` (the
 * node's Prometheus text): its read hit ratio (hits of hits + misses + stale
 * answers, `edge_cache_lookups_total`) and its regional breaker's state
 * (`edge_regional_breaker_state`, the worst over its processes).
 */
import { HEALTH_PROBE_TIMEOUT_MS } from "./node-rules";

export interface NodeMetrics {
  /** 0..1, or null when the node has answered no read yet. */
  hitRatio: number | null;
  breaker: "closed" | "half-open" | "open" | "unknown";
  /** Why they could not be read (`node_unreachable`, `timeout`, `http_<status>`). */
  error?: string;
}

const BREAKER = ["closed", "half-open", "open"] as const;

/** Reads the two figures from a node's Prometheus text. */
export function readNodeMetrics(text: string): NodeMetrics {
  const lookups = (result: string): number => Number(new RegExp(`^edge_cache_lookups_total\\{result="${result}"\\} (\\d+(?:\\.\\d+)?)`, "m").exec(text)?.[1] ?? 0);
  const hit = lookups("hit");
  const all = hit + lookups("miss") + lookups("stale");
  const state = /^edge_regional_breaker_state (\d+)/m.exec(text)?.[1];
  return { hitRatio: all === 0 ? null : hit / all, breaker: state === undefined ? "unknown" : (BREAKER[Number(state)] ?? "unknown") };
}

/** Asks a node for its /metrics, within `timeoutMs`. */
export async function probeMetrics(url: string, timeoutMs = HEALTH_PROBE_TIMEOUT_MS): Promise<NodeMetrics> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { hitRatio: null, breaker: "unknown", error: `http_${res.status}` };
    }
    return readNodeMetrics(await res.text());
  } catch (e) {
    return { hitRatio: null, breaker: "unknown", error: (e as Error).name === "TimeoutError" ? "timeout" : "node_unreachable" };
  }
}

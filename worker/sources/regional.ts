/**
 * The regional aggregator client (SPEC §5.1): one batched MessagePack call
 * per batch, bounded by REGIONAL_TIMEOUT_MS (AbortSignal) and guarded by a
 * consecutive-failure circuit breaker (cockatiel). The breaker lives for the
 * isolate: it holds no socket, only what the isolate has learned of the region.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  TaskCancelledError,
  TimeoutStrategy,
  circuitBreaker,
  handleAll,
  timeout,
  wrap,
  type CircuitBreakerPolicy,
  type IPolicy,
} from "cockatiel";
import { Packr } from "msgpackr";
import type { Config } from "../config";
import type { RecordPair } from "./edge-redis";
import { gauges, metrics } from "../metrics";

export type BreakerState = "closed" | "half-open" | "open";
export type RegionalFailure = "error" | "timeout" | "rejected";

/** The whole regional call failed; its SKUs are regional_unavailable. */
export class RegionalUnavailableError extends Error {
  constructor(
    readonly reason: RegionalFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RegionalUnavailableError";
  }
}

const packr = new Packr({ useRecords: false });
/** Zero bytes never decode: a field that is neither bin nor nil becomes invalid_record for its SKU. */
const NOT_A_RECORD = new Uint8Array(0);

const STATE_GAUGE: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 };

function stateOf(s: CircuitState): BreakerState {
  if (s === CircuitState.Closed) return "closed";
  if (s === CircuitState.HalfOpen) return "half-open";
  return "open";
}

function recordField(v: unknown): Uint8Array | null {
  if (v === null || v === undefined) return null;
  return v instanceof Uint8Array ? v : NOT_A_RECORD;
}

/** Decodes a 200 answer; a body that is not the protocol's shape fails the whole call. */
export function decodeRecordsAnswer(body: Uint8Array, skus: readonly string[]): Map<string, RecordPair> {
  let decoded: unknown;
  try {
    decoded = packr.unpack(body);
  } catch (e) {
    throw new RegionalUnavailableError("error", `regional answer is not MessagePack: ${(e as Error).message}`);
  }
  const records = (decoded as { records?: unknown } | null)?.records;
  if (typeof records !== "object" || records === null || Array.isArray(records)) {
    throw new RegionalUnavailableError("error", "regional answer has no records map");
  }
  const out = new Map<string, RecordPair>();
  for (const sku of skus) {
    // Own properties only: `constructor` or `toString` are valid SKU ids, and an object inherits them.
    const entry: unknown = Object.hasOwn(records, sku) ? (records as Record<string, unknown>)[sku] : undefined;
    if (entry === undefined || entry === null) continue;
    if (typeof entry !== "object") {
      out.set(sku, { stock: NOT_A_RECORD, price: NOT_A_RECORD });
      continue;
    }
    const { stock, price } = entry as { stock?: unknown; price?: unknown };
    const pair = { stock: recordField(stock), price: recordField(price) };
    if (pair.stock !== null || pair.price !== null) out.set(sku, pair);
  }
  return out;
}

export class RegionalClient {
  private readonly breaker: CircuitBreakerPolicy;
  private readonly policy: IPolicy<{ signal: AbortSignal }>;

  constructor(private readonly cfg: Config) {
    this.breaker = circuitBreaker(handleAll, {
      halfOpenAfter: cfg.regionalBreakerHalfOpenMs,
      breaker: new ConsecutiveBreaker(cfg.regionalBreakerThreshold),
    });
    this.breaker.onStateChange((s) => {
      const state = stateOf(s);
      if (state === "open") this.openedAt = Date.now();
      metrics.regionalBreakerTransitions.inc({ to: state });
    });
    this.policy = wrap(this.breaker, timeout(cfg.regionalTimeoutMs, TimeoutStrategy.Aggressive));
  }

  /** When the breaker last opened. */
  private openedAt = 0;

  /**
   * The breaker's state as of now. cockatiel moves from open to half-open
   * only when the next call comes; past REGIONAL_BREAKER_HALF_OPEN_MS the
   * next call is a probe, so the breaker is reported half-open already.
   */
  get state(): BreakerState {
    const s = stateOf(this.breaker.state);
    return s === "open" && Date.now() - this.openedAt >= this.cfg.regionalBreakerHalfOpenMs ? "half-open" : s;
  }

  /** Raw records of `skus` in `region`; SKUs the region does not know are absent. */
  async fetchRecords(region: string, skus: readonly string[]): Promise<Map<string, RecordPair>> {
    try {
      const result = await this.policy.execute(({ signal }) => this.call(region, skus, signal));
      metrics.regionalRequests.inc({ outcome: "ok" });
      return result;
    } catch (e) {
      const reason: RegionalFailure = e instanceof BrokenCircuitError ? "rejected" : e instanceof TaskCancelledError ? "timeout" : "error";
      metrics.regionalRequests.inc({ outcome: reason });
      const message =
        reason === "rejected"
          ? "regional breaker is open"
          : reason === "timeout"
            ? `regional aggregator did not answer within ${this.cfg.regionalTimeoutMs} ms`
            : `regional aggregator failed: ${(e as Error).message}`;
      throw new RegionalUnavailableError(reason, message, { cause: e });
    }
  }

  private async call(region: string, skus: readonly string[], signal: AbortSignal): Promise<Map<string, RecordPair>> {
    const headers: Record<string, string> = { "Content-Type": "application/msgpack", Accept: "application/msgpack" };
    if (this.cfg.regionalToken) headers["Authorization"] = `Bearer ${this.cfg.regionalToken}`;
    const res = await fetch(`${this.cfg.regionalUrl}/v1/records`, { method: "POST", headers, body: packr.pack({ region, skus }), signal });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status}`);
    }
    return decodeRecordsAnswer(new Uint8Array(await res.arrayBuffer()), skus);
  }
}

const clients = new Map<string, RegionalClient>();

// The gauge is the worst state of the isolate's breakers, as of the moment it is read.
gauges.regionalBreakerState.sampleWith(() => Math.max(0, ...[...clients.values()].map((c) => STATE_GAUGE[c.state])));

/** The isolate's client for this configuration (one breaker per region URL), or null without a region. */
export function regionalClientFor(cfg: Config): RegionalClient | null {
  if (cfg.regionalUrl === "") return null;
  const key = `${cfg.regionalUrl}|${cfg.regionalTimeoutMs}|${cfg.regionalBreakerThreshold}|${cfg.regionalBreakerHalfOpenMs}`;
  let c = clients.get(key);
  if (!c) {
    c = new RegionalClient(cfg);
    clients.set(key, c);
  }
  return c;
}

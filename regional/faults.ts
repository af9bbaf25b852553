/**
 * Fault injection of the reference regional aggregator, switchable at run
 * time (admin API or SIGUSR2): added latency, an error rate, a full outage,
 * and answers whose bodies do not decode.
 */

export interface Faults {
  /** Added to every /v1/records answer (ms). @default 0 */
  latencyMs: number;
  /** Fraction of /v1/records calls answered 500, 0..1. @default 0 */
  errorRate: number;
  /** Every /v1/records call answered 503. @default false */
  outage: boolean;
  /** 200 answers whose body is not MessagePack. @default false */
  corruptBody: boolean;
}

export const NO_FAULTS: Readonly<Faults> = { latencyMs: 0, errorRate: 0, outage: false, corruptBody: false };

/** Validates a partial update; the message names the bad field. */
export function parseFaults(body: unknown, current: Faults): Faults {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new RangeError("faults must be a JSON object");
  const next = { ...current };
  for (const [k, v] of Object.entries(body)) {
    switch (k) {
      case "latencyMs":
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 600_000) throw new RangeError(`latencyMs must be an integer in 0..600000, got ${JSON.stringify(v)}`);
        next.latencyMs = v;
        break;
      case "errorRate":
        if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw new RangeError(`errorRate must be a number in 0..1, got ${JSON.stringify(v)}`);
        next.errorRate = v;
        break;
      case "outage":
      case "corruptBody":
        if (typeof v !== "boolean") throw new RangeError(`${k} must be true or false, got ${JSON.stringify(v)}`);
        next[k] = v;
        break;
      default:
        throw new RangeError(`unknown fault ${JSON.stringify(k)}; known: latencyMs, errorRate, outage, corruptBody`);
    }
  }
  return next;
}

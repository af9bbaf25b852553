/**
 * Flash-sale traffic with autocannon: a steady load through the whole run and
 * a burst around T0, each request for a SKU drawn by popularity. Every answer
 * is recorded with its send and receive times, its X-Cache and its price.
 */
import autocannon from "autocannon";
import type { FlashCatalogue } from "./catalogue";

export interface Sample {
  sentAt: number;
  receivedAt: number;
  sku: string;
  status: number;
  cache: string;
  price: number | null;
}

function header(headers: unknown, name: string): string {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1]);
    return "";
  }
  // autocannon hands the headers as an object keyed as the server spelled them.
  for (const [k, v] of Object.entries((headers as Record<string, unknown> | undefined) ?? {})) if (k.toLowerCase() === name) return String(v);
  return "";
}

function run(url: string, cat: FlashCatalogue, connections: number, seconds: number, samples: Sample[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url,
        connections,
        duration: seconds,
        requests: [
          {
            method: "GET",
            setupRequest: (req, context) => {
              const ctx = context as { sku?: string; sentAt?: number };
              ctx.sku = cat.pick(Math.random());
              ctx.sentAt = Date.now();
              return { ...req, path: `/v1/skus/${ctx.sku}` };
            },
            onResponse: (status, body, context, headers) => {
              const ctx = context as { sku: string; sentAt: number };
              let price: number | null = null;
              if (status === 200) {
                try {
                  price = (JSON.parse(body) as { price: { amount: number } }).price.amount;
                } catch {
                  price = null;
                }
              }
              samples.push({ sentAt: ctx.sentAt, receivedAt: Date.now(), sku: ctx.sku, status, cache: header(headers, "x-cache"), price });
            },
          },
        ],
      },
      (err) => (err ? reject(err) : resolve()),
    );
    inst.on("error", reject);
  });
}

/** Steady load from `start` for `seconds`, plus a burst of `burstConnections` from T0 − 1 s for 5 s. */
export async function flashTraffic(url: string, cat: FlashCatalogue, t0: number, o: { seconds: number; steady: number; burst: number }): Promise<Sample[]> {
  const samples: Sample[] = [];
  const burstAt = t0 - 1000;
  await Promise.all([
    run(url, cat, o.steady, o.seconds, samples),
    new Promise<void>((resolve, reject) => setTimeout(() => run(url, cat, o.burst, 5, samples).then(resolve, reject), Math.max(0, burstAt - Date.now()))),
  ]);
  return samples.sort((a, b) => a.sentAt - b.sentAt);
}

/**
 * Flash-sale traffic, open loop: a schedule of requests drawn once from a
 * seeded generator (so every run gets the very same requests at the very same
 * offsets from T0, however fast the node answers), then sent at those
 * instants over keep-alive connections. A steady rate through the whole run
 * and a burst around T0, each request for a SKU drawn by popularity. Latency
 * is from the scheduled instant (a late send counts against the node, not
 * hidden: no coordinated omission).
 */
import { Agent, request } from "node:http";
import type { FlashCatalogue } from "./catalogue";

export interface Planned {
  /** ms from T0. */
  at: number;
  sku: string;
}

export interface Sample {
  /** Scheduled send instant (epoch ms). */
  sentAt: number;
  receivedAt: number;
  sku: string;
  status: number;
  cache: string;
  price: number | null;
  available: number | null;
}

export interface TrafficShape {
  /** Steady requests per second from `from` to `to` (ms from T0). */
  steady: { rate: number; from: number; to: number };
  /** Extra requests per second in the burst. */
  burst: { rate: number; from: number; to: number };
  seed: number;
}

/** mulberry32: a small seeded generator, so that every run draws the same traffic. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The requests of a run: evenly spaced at each rate, each SKU drawn by popularity from the seeded generator. */
export function schedule(cat: FlashCatalogue, shape: TrafficShape): Planned[] {
  const rnd = seeded(shape.seed);
  const out: Planned[] = [];
  for (const part of [shape.steady, shape.burst]) {
    const step = 1000 / part.rate;
    for (let t = part.from; t < part.to; t += step) out.push({ at: Math.round(t), sku: cat.pick(rnd()) });
  }
  return out.sort((a, b) => a.at - b.at);
}

function send(agent: Agent, base: URL, p: Planned, sentAt: number): Promise<Sample> {
  return new Promise((resolve) => {
    const done = (status: number, cache: string, body: string): void => {
      let price: number | null = null;
      let available: number | null = null;
      if (status === 200) {
        try {
          const a = JSON.parse(body) as { price: { amount: number }; stock: { available: number } };
          price = a.price.amount;
          available = a.stock.available;
        } catch {
          // counted as a wrong answer: a 200 without an aggregate
        }
      }
      resolve({ sentAt, receivedAt: Date.now(), sku: p.sku, status, cache, price, available });
    };
    const req = request({ agent, host: base.hostname, port: base.port, path: `/v1/skus/${p.sku}`, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done(res.statusCode ?? 0, String(res.headers["x-cache"] ?? ""), body));
      res.on("error", () => done(0, "", ""));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => done(0, "", ""));
    req.end();
  });
}

/** Sends the schedule against `url` with T0 at `t0` (epoch ms); resolves with every answer. */
export async function replay(url: string, planned: readonly Planned[], t0: number): Promise<Sample[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const base = new URL(url);
  const pending: Promise<Sample>[] = [];
  let i = 0;
  while (i < planned.length) {
    const now = Date.now();
    while (i < planned.length && t0 + planned[i]!.at <= now) {
      pending.push(send(agent, base, planned[i]!, t0 + planned[i]!.at));
      i++;
    }
    if (i < planned.length) await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5, t0 + planned[i]!.at - Date.now()))));
  }
  const samples = await Promise.all(pending);
  agent.destroy();
  return samples;
}

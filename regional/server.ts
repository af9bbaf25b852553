/**
 * The reference regional aggregator (SPEC §5.1): the authority behind the
 * edge for local runs, tests, the demo and load tests. One batched call
 * answers the raw records of a list of SKUs, read from its own Redis in one
 * pipelined round trip and returned byte for byte as stored.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import Redis from "ioredis";
import { Packr } from "msgpackr";
import { bearerVerdict, readCapped } from "../contract/http";
import { priceKey, stockKey } from "../records/keys";
import { NO_FAULTS, parseFaults, type Faults } from "./faults";

export interface RegionalOptions {
  /** The aggregator's own Redis. */
  redisUrl: string;
  /** @default 0 (a free port) */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** Bearer token required on /v1/records; "" = none. @default "" */
  token?: string;
  /** Bearer token required on /admin/*; "" = none (local use). @default "" */
  adminToken?: string;
  /** @default "sku:" */
  keyPrefix?: string;
  /** Redis command timeout (ms). @default 1000 */
  redisTimeoutMs?: number;
}

export interface Regional {
  url: string;
  port: number;
  faults: Faults;
  /** Requests answered, by status, and SKUs asked for. */
  counters: { requests: Map<number, number>; skus: number };
  close(): Promise<void>;
}

/** The most SKUs one call may ask for (SPEC §5.1). */
export const MAX_SKUS = 1000;
const MAX_BODY = 256 * 1024;

const packr = new Packr({ useRecords: false });

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const bytes = await readCapped(req, MAX_BODY);
  if (bytes === null) {
    req.destroy();
    throw new HttpFailure(413, "payload_too_large", `body exceeds ${MAX_BODY} bytes`);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

function checkBearer(req: IncomingMessage, token: string): void {
  if (token === "") return;
  if (bearerVerdict(req.headers.authorization, token) !== "ok") throw new HttpFailure(401, "unauthorized", "missing or invalid bearer token");
}

function parseRequest(body: Buffer): { region: string; skus: string[] } {
  let v: unknown;
  try {
    v = packr.unpack(body);
  } catch (e) {
    throw new HttpFailure(400, "bad_request", `body is not MessagePack: ${(e as Error).message}`);
  }
  const { region, skus } = (v ?? {}) as { region?: unknown; skus?: unknown };
  if (typeof region !== "string" || region === "") throw new HttpFailure(400, "bad_request", "region must be a non-empty string");
  if (!Array.isArray(skus) || skus.some((s) => typeof s !== "string")) throw new HttpFailure(400, "bad_request", "skus must be an array of strings");
  if (skus.length > MAX_SKUS) throw new HttpFailure(413, "payload_too_large", `at most ${MAX_SKUS} SKUs per call, got ${skus.length}`);
  return { region, skus: skus as string[] };
}

export async function startRegional(options: RegionalOptions): Promise<Regional> {
  const o = { port: 0, host: "127.0.0.1", token: "", adminToken: "", keyPrefix: "sku:", redisTimeoutMs: 1000, ...options };
  if (!/^rediss?:\/\//.test(o.redisUrl)) throw new RangeError(`redisUrl must be a redis:// URL, got ${JSON.stringify(o.redisUrl)}`);
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new RangeError(`port must be 0..65535, got ${o.port}`);
  const redis = new Redis(o.redisUrl, { commandTimeout: o.redisTimeoutMs, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  redis.on("error", () => {}); // reported per request
  await redis.connect().catch(() => undefined); // a Redis that is down now may come back later

  const state: Regional = {
    url: "",
    port: 0,
    faults: { ...NO_FAULTS },
    counters: { requests: new Map(), skus: 0 },
    close: async () => {},
  };
  const count = (status: number): void => {
    state.counters.requests.set(status, (state.counters.requests.get(status) ?? 0) + 1);
  };

  /** The records of `skus` from the region's Redis, by SKU (SKUs it does not know are absent). */
  async function readRecords(skus: readonly string[]): Promise<Map<string, { stock: Buffer | null; price: Buffer | null }>> {
    if (redis.status !== "ready") await redis.connect().catch(() => undefined);
    let replies: [Error | null, unknown][] | null;
    try {
      const p = redis.pipeline();
      for (const sku of skus) p.getBuffer(stockKey(o.keyPrefix, sku)).getBuffer(priceKey(o.keyPrefix, sku));
      replies = await p.exec();
    } catch (e) {
      throw new HttpFailure(503, "store_unavailable", `regional Redis: ${(e as Error).message}`);
    }
    // With the offline queue off, a Redis that is down fails each command inside the pipeline.
    // A per-key ReplyError (WRONGTYPE) is that record's problem, not the store's: it goes out as zero bytes.
    const failedRead = replies?.find(([err]) => err !== null && err.name !== "ReplyError")?.[0];
    if (!replies || failedRead) throw new HttpFailure(503, "store_unavailable", `regional Redis: ${failedRead?.message ?? "no reply"}`);
    // A Map, not an object: any id the region holds goes out as a key of its own (an object's `__proto__` would not).
    const out = new Map<string, { stock: Buffer | null; price: Buffer | null }>();
    const value = (i: number): unknown => (replies[i]![0] ? Buffer.alloc(0) : replies[i]![1]);
    skus.forEach((sku, i) => {
      const stock = value(2 * i);
      const price = value(2 * i + 1);
      if (Buffer.isBuffer(stock) || Buffer.isBuffer(price)) {
        out.set(sku, { stock: Buffer.isBuffer(stock) ? stock : null, price: Buffer.isBuffer(price) ? price : null });
      }
    });
    return out;
  }

  async function records(req: IncomingMessage, res: ServerResponse): Promise<void> {
    checkBearer(req, o.token);
    const { skus } = parseRequest(await readBody(req));
    state.counters.skus += skus.length;
    const f = state.faults;
    // The records are read as the request arrives and answered after the added latency, as a far region's would be.
    const reading = readRecords(skus);
    reading.catch(() => undefined); // awaited below, unless a fault answers first
    if (f.latencyMs > 0) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.outage) throw new HttpFailure(503, "outage", "injected outage");
    if (f.errorRate > 0 && Math.random() < f.errorRate) throw new HttpFailure(500, "injected_error", "injected error");
    if (f.corruptBody) {
      count(200);
      res.writeHead(200, { "Content-Type": "application/msgpack" });
      res.end(Buffer.from([0xc1, 0xc1, 0xc1]));
      return;
    }
    const out = await reading;
    count(200);
    res.writeHead(200, { "Content-Type": "application/msgpack" });
    res.end(packr.pack({ records: out }));
  }

  async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    checkBearer(req, o.adminToken);
    if (path === "/admin/faults" && req.method === "GET") return sendJson(res, 200, state.faults);
    if (path === "/admin/faults" && (req.method === "PUT" || req.method === "POST")) {
      let body: unknown;
      try {
        body = JSON.parse((await readBody(req)).toString("utf8"));
        state.faults = parseFaults(body, state.faults);
      } catch (e) {
        throw new HttpFailure(400, "bad_request", (e as Error).message);
      }
      return sendJson(res, 200, state.faults);
    }
    if (path === "/admin/faults/reset" && req.method === "POST") {
      state.faults = { ...NO_FAULTS };
      return sendJson(res, 200, state.faults);
    }
    throw new HttpFailure(404, "route_not_found", `no route for ${req.method} ${path}`);
  }

  function metricsText(): string {
    const lines = ["# HELP regional_requests_total /v1/records calls answered, by status.", "# TYPE regional_requests_total counter"];
    for (const [status, n] of state.counters.requests) lines.push(`regional_requests_total{status="${status}"} ${n}`);
    lines.push("# HELP regional_skus_total SKUs asked for.", "# TYPE regional_skus_total counter", `regional_skus_total ${state.counters.skus}`);
    return `${lines.join("\n")}\n`;
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const handle = async (): Promise<void> => {
      if (path === "/v1/records" && req.method === "POST") return records(req, res);
      if (path.startsWith("/admin/")) return admin(req, res, path);
      if (path === "/metrics" && req.method === "GET") {
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
        res.end(metricsText());
        return;
      }
      if (path === "/healthz" && req.method === "GET") {
        const ok = await redis.ping().then(() => true, () => false);
        return sendJson(res, ok ? 200 : 503, { status: ok ? "ok" : "degraded", redis: ok, faults: state.faults });
      }
      throw new HttpFailure(404, "route_not_found", `no route for ${req.method} ${path}`);
    };
    handle().catch((e: unknown) => {
      const f = e instanceof HttpFailure ? e : new HttpFailure(500, "internal", (e as Error).message);
      if (path === "/v1/records") count(f.status);
      if (!res.headersSent) sendJson(res, f.status, { error: { code: f.code, message: f.message } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, resolve);
  });
  const addr = server.address();
  state.port = typeof addr === "object" && addr ? addr.port : o.port;
  state.url = `http://${o.host}:${state.port}`;
  state.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    redis.disconnect();
  };
  return state;
}

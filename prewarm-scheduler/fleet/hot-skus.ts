/**
 * Hot SKUs found, not guessed: asks every node for its most-read SKUs
 * (`GET /v1/hot`, SPEC §5), adds their reads up over the nodes, and replaces a
 * sorted set in the scheduler's Redis with the result, the set a plan's
 * `skus.hot` reads. The replacement is atomic (a new key renamed over the
 * old), so a run never reads half a set; a node that does not answer is
 * reported and left out, and when none answers the set is left as it was.
 */
import { z } from "zod";
import type { SchedulerRedis } from "../redis/redis";
import { isValidSku } from "../../contract/ids";
import type { SchedulerConfig } from "../config/config";

/** The sorted set the console collects hot SKUs into, and the ops API's default. */
export const DEFAULT_HOT_KEY = "hot:fleet";
/** Over the API only keys under `hot:`, so a caller cannot overwrite the scheduler's own keys. */
const hotKey = z.string().regex(/^hot:[A-Za-z0-9:_.-]{1,100}$/, { error: "must be hot: followed by 1-100 letters, digits, colons, dots, dashes or underscores" }).default(DEFAULT_HOT_KEY);
const hotTop = z.int({ error: "must be an integer" }).min(1).max(1000);
/** POST /v1/hot of the ops API: collect the nodes' top `top` SKUs into `key`. */
export const hotCollectSchema = z.strictObject({ key: hotKey, top: hotTop.default(1000) });
/** GET /v1/hot of the ops API (its query, `top` read as a number): the `top` hottest of `key`. */
export const hotQuerySchema = z.strictObject({ key: hotKey, top: hotTop.default(100) });

export interface HotCollection {
  key: string;
  skus: number;
  nodes: { name: string; skus: number; error?: string }[];
}

async function nodeHot(url: string, token: string, region: string, top: number, timeoutMs: number): Promise<{ sku: string; reads: number }[]> {
  const res = await fetch(`${url}/v1/hot?top=${top}&region=${encodeURIComponent(region)}`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`answered ${res.status}`);
  }
  const body = (await res.json()) as { skus?: unknown };
  if (!Array.isArray(body.skus)) throw new Error("answered without skus");
  return body.skus.filter((s): s is { sku: string; reads: number } => typeof s === "object" && s !== null && isValidSku((s as { sku: unknown }).sku) && Number.isFinite((s as { reads: unknown }).reads));
}

/** Collects the nodes' top `top` SKUs into the sorted set `key` (score = reads over all nodes). */
export async function collectHotSkus(cfg: SchedulerConfig, redis: SchedulerRedis, key: string, top: number): Promise<HotCollection> {
  const reads = new Map<string, number>();
  const nodes = await Promise.all(
    cfg.nodes.map(async (n) => {
      try {
        const skus = await nodeHot(n.url, n.token ?? cfg.token, n.region, top, cfg.requestTimeoutMs);
        for (const s of skus) reads.set(s.sku, (reads.get(s.sku) ?? 0) + s.reads);
        return { name: n.name, skus: skus.length };
      } catch (e) {
        const err = e as Error;
        return { name: n.name, skus: 0, error: err.name === "TimeoutError" ? "timeout" : err.message };
      }
    }),
  );
  if (nodes.every((n) => n.error !== undefined) || reads.size === 0) return { key, skus: 0, nodes };
  // In the key's own hash slot (`{key}` hashes as `key` does), so the rename works on a Redis Cluster too.
  const tmp = `{${key}}:collecting:${process.pid}:${Date.now()}`;
  const m = redis.multi();
  m.zadd(tmp, ...[...reads].flatMap(([sku, r]) => [r, sku]));
  m.rename(tmp, key);
  await m.exec();
  return { key, skus: reads.size, nodes };
}

/**
 * The warmer protects what it warms: a per-node pace shared by every
 * scheduler process, in the scheduler's Redis.
 *
 * Each node has one instant, "free at" (GCRA): a batch of n SKUs to a node
 * limited to r SKUs/s may start at max(now, free at), which then moves on by
 * n / r seconds. A batch whose answer says the node is leaning on its region
 * (too large a share came from the regional aggregator, or SKUs failed
 * regional_unavailable: the node's breaker is open or the region is down)
 * pushes the node's instant further by `slowdownMs`: its next batches wait,
 * and the run's report counts the slowdown by reason.
 */
import type { Redis } from "ioredis";
import type { PrewarmAnswer } from "./edge-client";

const TAKE = `
-- KEYS: pace; ARGV: now, cost ms; returns the wait (ms) before this batch may start
local now = tonumber(ARGV[1])
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('SET', KEYS[1], free + tonumber(ARGV[2]), 'PX', math.max(1000, free + tonumber(ARGV[2]) - now + 60000))
return free - now
`;

const SLOW = `
-- KEYS: pace; ARGV: now, slowdown ms
local now = tonumber(ARGV[1])
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], free, 'PX', free - now + 60000)
return free - now
`;

type PacingRedis = Redis & {
  prewarmPaceTake(key: string, now: number, costMs: number): Promise<number>;
  prewarmPaceSlow(key: string, now: number, slowdownMs: number): Promise<number>;
};

export interface Protection {
  /** A batch with more than this share of its warmed SKUs from the region slows its node down. */
  regionalShare: number;
  slowdownMs: number;
}

/** Why an answer should slow its node down, or null. */
export function slowdownReason(answer: Pick<PrewarmAnswer, "warmed" | "fromRegional" | "failed">, p: Protection): "breaker" | "regional_share" | null {
  if (answer.failed.some((f) => f.code === "regional_unavailable")) return "breaker";
  if (answer.warmed > 0 && answer.fromRegional / answer.warmed > p.regionalShare) return "regional_share";
  return null;
}

export class Pacer {
  private readonly redis: PacingRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    if (!("prewarmPaceTake" in redis)) {
      redis.defineCommand("prewarmPaceTake", { numberOfKeys: 1, lua: TAKE });
      redis.defineCommand("prewarmPaceSlow", { numberOfKeys: 1, lua: SLOW });
    }
    this.redis = redis as PacingRedis;
  }

  private key(node: string): string {
    return `${this.prefix}:pace:${node}`;
  }

  /** Books a batch of `skus` on `node` at `skusPerSecond` (0: no limit, but a slowdown still applies); the ms to wait before sending it. */
  async take(node: string, skus: number, skusPerSecond: number, now = Date.now()): Promise<number> {
    const cost = skusPerSecond > 0 ? Math.ceil((skus * 1000) / skusPerSecond) : 0;
    return this.redis.prewarmPaceTake(this.key(node), now, cost);
  }

  /** Pushes `node`'s next batches back by `ms`. */
  async slow(node: string, ms: number, now = Date.now()): Promise<void> {
    await this.redis.prewarmPaceSlow(this.key(node), now, ms);
  }
}

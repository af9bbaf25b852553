/**
 * The warmer protects what it warms: per node, a limit of batches in flight
 * and a pace, shared by every scheduler process, in the scheduler's Redis.
 *
 * Slots: a node has at most `concurrencyPerNode` batches in flight over all
 * scheduler processes, each held as a lease (a sorted-set member that expires
 * after the batch's timeout, so a process that dies cannot keep it).
 *
 * Each node has one instant, "free at" (GCRA): a batch of n SKUs to a node
 * limited to r SKUs/s may start at max(now, free at), which then moves on by
 * n / r seconds. A batch whose answer says the node is leaning on its region
 * (too large a share came from the regional aggregator, or SKUs failed
 * regional_unavailable: the node's breaker is open or the region is down)
 * pushes the node's instant further by `slowdownMs`: its next batches wait,
 * and the run's report counts the slowdown by reason.
 */
import type { SchedulerRedis } from "../redis/redis";
import type { PrewarmAnswer } from "../../contract/prewarm-client";

const TAKE = `
-- KEYS: pace; ARGV: now, cost ms, max wait ms (-1: any); returns the wait (ms) before this batch may
-- start, or, when that is over the max wait, minus the wait, booking nothing
local now = tonumber(ARGV[1])
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local most = tonumber(ARGV[3])
if most >= 0 and free - now > most then return now - free end
redis.call('SET', KEYS[1], free + tonumber(ARGV[2]), 'PX', math.max(1000, free + tonumber(ARGV[2]) - now + 60000))
return free - now
`;

const ACQUIRE = `
-- KEYS: slots; ARGV: now, lease expiry, limit, holder; returns 1 when the holder has a slot
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

const SLOW = `
-- KEYS: pace; ARGV: now, slowdown ms
local now = tonumber(ARGV[1])
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], free, 'PX', free - now + 60000)
return free - now
`;

type PacingRedis = SchedulerRedis & {
  prewarmSlotAcquire(key: string, now: number, expiresAt: number, limit: number, holder: string): Promise<number>;
  prewarmPaceTake(key: string, now: number, costMs: number, maxWaitMs: number): Promise<number>;
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
    redis: SchedulerRedis,
    private readonly prefix: string,
  ) {
    if (!("prewarmPaceTake" in redis)) {
      redis.defineCommand("prewarmSlotAcquire", { numberOfKeys: 1, lua: ACQUIRE });
      redis.defineCommand("prewarmPaceTake", { numberOfKeys: 1, lua: TAKE });
      redis.defineCommand("prewarmPaceSlow", { numberOfKeys: 1, lua: SLOW });
    }
    this.redis = redis as PacingRedis;
  }

  private key(node: string): string {
    return `${this.prefix}:pace:${node}`;
  }

  /** Takes one of `node`'s `limit` slots for `holder` (a batch) until `leaseMs` from now; false when all are taken. */
  async acquire(node: string, holder: string, limit: number, leaseMs: number, now = Date.now()): Promise<boolean> {
    return (await this.redis.prewarmSlotAcquire(`${this.prefix}:slots:${node}`, now, now + leaseMs, limit, holder)) === 1;
  }

  async release(node: string, holder: string): Promise<void> {
    await this.redis.zrem(`${this.prefix}:slots:${node}`, holder);
  }

  /**
   * Books a batch of `skus` on `node` at `skusPerSecond` (0: no limit, but a
   * slowdown still applies); the ms to wait before sending it. When that wait
   * would pass `maxWaitMs`, books nothing and answers minus the wait.
   */
  async take(node: string, skus: number, skusPerSecond: number, now = Date.now(), maxWaitMs = -1): Promise<number> {
    const cost = skusPerSecond > 0 ? Math.ceil((skus * 1000) / skusPerSecond) : 0;
    return this.redis.prewarmPaceTake(this.key(node), now, cost, maxWaitMs);
  }

  /** Pushes `node`'s next batches back by `ms`. */
  async slow(node: string, ms: number, now = Date.now()): Promise<void> {
    await this.redis.prewarmPaceSlow(this.key(node), now, ms);
  }
}

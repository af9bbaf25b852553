/**
 * The scheduler's Redis: one server, or a Redis Cluster (`redisCluster:
 * true`, `redis` naming any of its nodes). On a cluster every key of the
 * scheduler carries the hash tag of its prefix (`{prewarm}:…`, set by the
 * config), so BullMQ's scripts and the run store's, which touch several keys
 * at once, find them in one slot.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { SchedulerConfig } from "../config/config";

export type SchedulerRedis = Redis | Cluster;

/** A client of the scheduler's Redis with `options` (for a cluster, the options of its node connections). */
export function connectRedis(cfg: Pick<SchedulerConfig, "redis" | "redisCluster">, options: RedisOptions): SchedulerRedis {
  if (!cfg.redisCluster) return new Redis(cfg.redis, options);
  const u = new URL(cfg.redis);
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    redisOptions: { ...options, ...(u.username ? { username: decodeURIComponent(u.username) } : {}), ...(u.password ? { password: decodeURIComponent(u.password) } : {}), ...(u.protocol === "rediss:" ? { tls: {} } : {}) },
    // A cluster client retries a command while the cluster moves slots; BullMQ needs its blocking commands never to fail a request.
    ...(options.maxRetriesPerRequest === null ? { clusterRetryStrategy: (n: number) => Math.min(100 * n, 2000) } : {}),
  });
}

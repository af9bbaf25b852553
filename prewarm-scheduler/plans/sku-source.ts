/** Resolves a plan's SKUs when a run starts: its list, or the top N of a Redis sorted set of hot SKUs. */
import { Redis } from "ioredis";
import { isValidSku } from "../../contract/ids";
import type { Plan } from "./plan";
import type { SchedulerRedis } from "../redis/redis";

export class SkuSourceError extends Error {
  override readonly name = "SkuSourceError";
}

/** The SKUs of a run, de-duplicated in plan order (highest score first for a hot set). */
export async function resolveSkus(skus: Plan["skus"], schedulerRedis: SchedulerRedis): Promise<string[]> {
  if (skus.hot === undefined) return [...new Set(skus.list)];
  const { key, top, redis: url } = skus.hot;
  const client = url ? new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 }) : schedulerRedis;
  try {
    const members = await client.zrevrange(key, 0, top - 1);
    if (members.length === 0) throw new SkuSourceError(`hot SKU set ${JSON.stringify(key)} is empty or missing`);
    const bad = members.find((m) => !isValidSku(m));
    if (bad !== undefined) throw new SkuSourceError(`hot SKU set ${JSON.stringify(key)} holds a member that is not a SKU id: ${JSON.stringify(bad)}`);
    return members;
  } finally {
    if (client !== schedulerRedis) client.disconnect();
  }
}

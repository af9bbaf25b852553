/**
 * Test access to the real edge Redis started by global-setup. A client is
 * created and closed inside the calling test (workerd ties sockets to the
 * request context that opened them).
 */
import Redis from "ioredis";
import { inject } from "vitest";
import { encodeRecord } from "../../records/encode";

export async function withRedis<T>(fn: (r: Redis) => Promise<T>, url: string = inject("redisUrl")): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Writes a SKU's records as the edge stores them (null = delete the key); `url` picks the Redis (default: the edge's). */
export async function seed(sku: string, stock: unknown, price: unknown, url: string = inject("redisUrl"), prefix = "sku:"): Promise<void> {
  await withRedis(async (r) => {
    const m = r.multi();
    if (stock === null) m.del(`${prefix}${sku}:stock`);
    else m.set(`${prefix}${sku}:stock`, Buffer.from(stock instanceof Uint8Array ? stock : encodeRecord(stock)));
    if (price === null) m.del(`${prefix}${sku}:price`);
    else m.set(`${prefix}${sku}:price`, Buffer.from(price instanceof Uint8Array ? price : encodeRecord(price)));
    await m.exec();
  }, url);
}

/** Writes a SKU's records into the regional aggregator's Redis only. */
export function seedRegional(sku: string, stock: unknown, price: unknown): Promise<void> {
  return seed(sku, stock, price, inject("regionalRedisUrl"));
}

/** How many GET commands the server has executed (INFO commandstats). */
export async function redisGetCalls(): Promise<number> {
  return withRedis(async (r) => {
    const info = await r.info("commandstats");
    const m = /cmdstat_get:calls=(\d+)/.exec(info);
    return m ? Number(m[1]) : 0;
  });
}

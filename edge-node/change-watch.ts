/**
 * The node watches its own edge Redis for changed records (SPEC §7): when the
 * stock or price record of a SKU that is warm on the node is written or
 * deleted, the node re-warms that SKU, so it serves the new aggregate within
 * a second with no purge and no prewarm from outside.
 *
 * How: Redis keyspace notifications, subscribed by pattern to the record
 * keys only (`__keyspace@<db>__:{prefix}*:stock|price`, so the node's own
 * aggregate writes never reach the watch), for `set`, `del` and `unlink`; the
 * watcher switches on the `K$g` classes it needs, keeping any the operator set. Changed SKUs are collected for FLUSH_EVERY_MS,
 * de-duplicated, filtered to those with an aggregate on the node (one
 * pipelined PTTL per SKU and region), and re-warmed with one POST /v1/prewarm
 * per region and up to 1,000 SKUs to one of the node's processes, each keeping
 * the time its aggregate was to live. The processes' own write of the new
 * aggregate tells the others through the change log, as any prewarm does.
 *
 * Notifications are fire-and-forget: a change made while this subscription is
 * down (a reconnect) is not seen, and that key refreshes at its TTL.
 */
import { Redis } from "ioredis";
import type { Config } from "../worker/config";
import { postBatch } from "../contract/prewarm-client";
import { aggregateKey } from "../worker/sources/edge-redis";

/** Changes are collected this long before one re-warm: the time a change waits, at most, before its re-warm starts. */
export const FLUSH_EVERY_MS = 25;
/** The largest prewarm batch (SPEC §5). */
const MAX_BATCH = 1000;
/** Re-warms in flight at once; more changes wait for the next flush. */
const MAX_IN_FLIGHT = 2;

export interface ChangeWatchOptions {
  cfg: Config;
  /** A process's base URL to send the re-warm to (round robin over the running processes), or null while none runs. */
  target: () => string | null;
  log: (line: string) => void;
}

/** The keyspace-notification classes the watcher needs: keyspace (K), string commands ($), generic commands (g). */
export function withNeededFlags(current: string): string {
  let flags = current;
  // "A" stands for every class but key-miss and new-key events: it already includes $ and g.
  for (const f of flags.includes("A") ? ["K"] : ["K", "$", "g"]) if (!flags.includes(f)) flags += f;
  return flags;
}

/** The events of a record key that mean its value changed. */
const CHANGES = new Set(["set", "del", "unlink"]);

export class ChangeWatch {
  private readonly sub: Redis;
  private readonly client: Redis;
  private readonly changed = new Set<string>();
  private readonly recordKey: RegExp;
  private readonly regions: readonly string[];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private closed = false;
  /** Counters, for the log and tests: changes seen, SKUs re-warmed, re-warms that failed. */
  readonly counts = { changes: 0, rewarmed: 0, failed: 0 };

  constructor(private readonly o: ChangeWatchOptions) {
    const { cfg } = o;
    this.sub = new Redis(cfg.edgeRedisUrl, { lazyConnect: true, maxRetriesPerRequest: null });
    this.client = new Redis(cfg.edgeRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 1000 });
    for (const c of [this.sub, this.client]) c.on("error", () => {}); // reconnects by itself; start() reports the first failure
    const prefix = cfg.redisKeyPrefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    this.recordKey = new RegExp(`^${prefix}([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(stock|price)$`);
    this.regions = cfg.edgeRegions ?? [cfg.edgeRegion];
  }

  /** Switches the notifications on and subscribes; rejects (naming why) when the edge Redis refuses. */
  async start(): Promise<void> {
    await Promise.all([this.sub.connect(), this.client.connect()]);
    await this.ensureFlags();
    // A Redis restarted without its runtime config has notifications off again: switch them back on.
    this.client.on("ready", () => void this.ensureFlags().catch((e: Error) => this.o.log(`could not switch the edge Redis's keyspace notifications back on: ${e.message}`)));
    const db = Number(new URL(this.o.cfg.edgeRedisUrl).pathname.slice(1) || 0);
    const channel = `__keyspace@${db}__:`;
    this.sub.on("pmessage", (_pattern: string, ch: string, event: string) => {
      if (CHANGES.has(event)) this.onKey(ch.slice(channel.length));
    });
    // Redis matches the patterns: only record keys are sent (glob: escape what the prefix may hold).
    const glob = this.o.cfg.redisKeyPrefix.replace(/[*?[\]\\]/g, "\\$&");
    await this.sub.psubscribe(`${channel}${glob}*:stock`, `${channel}${glob}*:price`);
  }

  /** Adds the notification classes the watch needs to those the edge Redis has on. */
  private async ensureFlags(): Promise<void> {
    const [, current] = (await this.client.config("GET", "notify-keyspace-events")) as [string, string];
    const needed = withNeededFlags(current);
    if (needed !== current) await this.client.config("SET", "notify-keyspace-events", needed);
  }

  private onKey(key: string): void {
    const m = this.recordKey.exec(key);
    if (!m) return;
    this.counts.changes++;
    this.changed.add(m[1]!);
    this.timer ??= setTimeout(() => this.flush(), FLUSH_EVERY_MS);
  }

  private flush(): void {
    this.timer = null;
    if (this.closed || this.changed.size === 0) return;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.timer = setTimeout(() => this.flush(), FLUSH_EVERY_MS);
      return;
    }
    const skus = [...this.changed].slice(0, MAX_BATCH);
    for (const s of skus) this.changed.delete(s);
    if (this.changed.size > 0) this.timer = setTimeout(() => this.flush(), 0);
    this.inFlight++;
    void this.rewarm(skus)
      .catch((e: Error) => {
        this.counts.failed += skus.length;
        this.o.log(`re-warming ${skus.length} changed SKUs failed: ${e.message}`);
      })
      .finally(() => this.inFlight--);
  }

  /** Re-warms the warm ones among `skus`, per region, each with the rest of its aggregate's life as TTL. */
  private async rewarm(skus: readonly string[]): Promise<void> {
    const { cfg } = this.o;
    const p = this.client.pipeline();
    for (const region of this.regions) for (const sku of skus) p.pttl(aggregateKey(cfg.redisKeyPrefix, sku, region));
    const out = (await p.exec()) ?? [];
    const graceMs = Math.max(cfg.staleWhileRevalidateSeconds, cfg.staleIfErrorSeconds) * 1000;
    let i = 0;
    for (const region of this.regions) {
      // Grouped by TTL: the store keeps an aggregate its validity plus the stale grace.
      const byTtl = new Map<number, string[]>();
      for (const sku of skus) {
        const [err, pttl] = out[i++] ?? [null, -2];
        if (err || typeof pttl !== "number" || pttl < 0) continue; // not warm here (-2), or no expiry to keep (-1)
        const left = Math.ceil((pttl - graceMs) / 1000);
        const ttl = left >= 1 ? Math.min(left, 86_400) : cfg.cacheTtlSeconds;
        const group = byTtl.get(ttl);
        if (group) group.push(sku);
        else byTtl.set(ttl, [sku]);
      }
      for (const [ttl, batch] of byTtl) await this.post(region, batch, ttl);
    }
  }

  private async post(region: string, skus: string[], ttl: number): Promise<void> {
    const base = this.o.target();
    if (base === null) throw new Error("no process is running");
    const answer = await postBatch({ url: base, token: this.o.cfg.prewarmToken, region, skus, ttl, jobId: `changes-${Date.now()}`, timeoutMs: 10_000 });
    this.counts.rewarmed += answer.warmed;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.sub.disconnect();
    this.client.disconnect();
  }
}

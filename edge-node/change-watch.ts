/**
 * The node watches its own edge Redis for changed records (SPEC §7): when the
 * stock or price record of a SKU that is warm on the node is written,
 * renamed into place, restored, expires or is deleted, the node re-warms that
 * SKU in every region it holds an aggregate of it in, so it serves the new
 * aggregate within a second with no purge and no prewarm from outside.
 *
 * How: Redis keyspace notifications, subscribed by pattern to the record
 * keys only (`__keyspace@<db>__:{prefix}*:stock|price`, so the node's own
 * aggregate writes never reach the watch). Every event of a record key is a
 * change (`set`, `del`, `unlink`, `expired`, `evicted`, `rename_from`,
 * `rename_to`, `restore`, `copy_to`, `move_from`, `move_to`, `setrange`,
 * `append`, `incrby`...) but those that leave its value as it was (`expire`,
 * `persist`, `new`, `keymiss`): the watcher switches on the `K$gxe` classes
 * it needs, keeping any the operator set. Changed SKUs are collected for
 * FLUSH_EVERY_MS, de-duplicated, and checked for an aggregate in each region
 * the node holds aggregates in (aggregate-regions.ts: EDGE_REGIONS, or the
 * regions found by a paced SCAN; one pipelined PTTL per SKU and region).
 * Those warm are re-warmed with one POST /v1/prewarm per region and up to
 * 1,000 SKUs to one of the node's processes, each keeping the time its
 * aggregate was to live. The processes' own write of the new aggregate tells
 * the others through the change log, as any prewarm does.
 *
 * A SKU stays pending until its re-warm succeeded in each of its regions: a
 * batch refused (503 `overloaded` or `store_unavailable`, no process running,
 * a timeout) is tried again after the node's Retry-After or a backoff (200 ms
 * doubling to 10 s, for the whole watch: an overloaded node is not sent the
 * next batch either), and a SKU answered `regional_unavailable` after its own
 * backoff, until it succeeds, its aggregate has expired, or a newer change of
 * the SKU supersedes it (which re-queues it at once). At most MAX_PENDING SKUs
 * wait: a change of another SKU past that is dropped, counted and logged (that
 * key refreshes at its TTL).
 *
 * Notifications are fire-and-forget: a change made while this subscription is
 * down (a reconnect) is not seen, nor is the pending set kept over a restart
 * of the supervisor; those keys refresh at their TTL.
 */
import { Redis } from "ioredis";
import type { Config } from "../worker/config";
import { isBatchError, postBatch } from "../contract/prewarm-client";
import { aggregateKey } from "../worker/sources/edge-redis";
import { AggregateRegions } from "./aggregate-regions";

/** Changes are collected this long before one re-warm: the time a change waits, at most, before its re-warm starts. */
export const FLUSH_EVERY_MS = 25;
/** The largest prewarm batch (SPEC §5). */
const MAX_BATCH = 1000;
/** Re-warms in flight at once; more changes wait for the next flush. */
const MAX_IN_FLIGHT = 2;
/** SKUs waiting for their re-warm, at most (a change of another SKU past that is dropped). */
export const MAX_PENDING = 100_000;
/** Changes remembered for a re-check when a region becomes known (aggregate-regions.ts), at most. */
const MAX_RECENT = 100_000;
/** Backoff after a failed attempt: this, doubling, up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;
/** A drop is logged at most this often. */
const LOG_DROPS_EVERY_MS = 10_000;

export interface ChangeWatchOptions {
  cfg: Config;
  /** A process's base URL to send the re-warm to (round robin over the running processes), or null while none runs. */
  target: () => string | null;
  log: (line: string) => void;
}

/** The keyspace-notification classes the watcher needs: keyspace (K), string commands ($), generic commands (g: del, rename, restore, copy, move), expired (x), evicted (e). */
export function withNeededFlags(current: string): string {
  let flags = current;
  // "A" stands for every class but key-miss and new-key events: it already includes $, g, x and e.
  for (const f of flags.includes("A") ? ["K"] : ["K", "$", "g", "x", "e"]) if (!flags.includes(f)) flags += f;
  return flags;
}

/**
 * The events of a record key that leave its value as it was: a TTL set or
 * removed, a key created (a `set` or the like follows), a read that missed.
 * Every other event changes it (a value written, deleted, expired, evicted,
 * renamed or moved away or into place, restored, copied over...): a list of
 * what does not change is kept, not of what does, so an event this list does
 * not know costs one re-warm too many rather than a change missed.
 */
const UNCHANGED = new Set(["expire", "persist", "new", "keymiss"]);

/** A SKU waiting for its re-warm. */
interface Pending {
  /** Bumped by every change of the SKU: an attempt that started before the last change does not settle it. */
  version: number;
  /** The regions still to re-warm; null = every region the node holds aggregates in (looked up at the attempt). */
  regions: Set<string> | null;
  /** Failed attempts since the last change (its backoff). */
  attempts: number;
  /** Not tried again before this (ms epoch). */
  dueAt: number;
  inFlight: boolean;
}

/** How an attempt at one batch ended for the whole watch. */
type Outcome = { ok: true } | { ok: false; retryAfterMs: number | undefined };

function addRegion(failed: Map<string, Set<string>>, sku: string, region: string): void {
  const regions = failed.get(sku);
  if (regions) regions.add(region);
  else failed.set(sku, new Set([region]));
}

function backoffMs(failures: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.max(0, failures - 1));
}

export class ChangeWatch {
  private readonly sub: Redis;
  private readonly client: Redis;
  private readonly pending = new Map<string, Pending>();
  /** SKU → when it last changed, oldest first (see `AggregateRegions.onNew`). */
  private readonly recent = new Map<string, number>();
  private readonly recordKey: RegExp;
  private readonly regions: AggregateRegions;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private inFlight = 0;
  /** No batch is sent before this (ms epoch): the node asked for time, or failed. */
  private pausedUntil = 0;
  /** Batches failed in a row (the watch's backoff). */
  private failures = 0;
  private droppedSinceLog = 0;
  private dropsLoggedAt = 0;
  private closed = false;
  /**
   * Counters, for the log and tests: changes seen, SKUs re-warmed (per
   * region), re-warm attempts that failed and will be retried (per SKU and
   * region), SKUs given up (a batch the node refused for good), changes
   * dropped past MAX_PENDING.
   */
  readonly counts = { changes: 0, rewarmed: 0, retried: 0, failed: 0, dropped: 0 };

  constructor(private readonly o: ChangeWatchOptions) {
    const { cfg } = o;
    this.sub = new Redis(cfg.edgeRedisUrl, { lazyConnect: true, maxRetriesPerRequest: null });
    this.client = new Redis(cfg.edgeRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 1000 });
    for (const c of [this.sub, this.client]) c.on("error", () => {}); // reconnects by itself; start() reports the first failure
    const prefix = cfg.redisKeyPrefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    this.recordKey = new RegExp(`^${prefix}([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(stock|price)$`);
    this.regions = new AggregateRegions({ cfg, client: this.client, log: o.log, onNew: (region, since) => this.recheck(region, since) });
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
      if (!UNCHANGED.has(event)) this.onKey(ch.slice(channel.length));
    });
    // Redis matches the patterns: only record keys are sent (glob: escape what the prefix may hold).
    const glob = this.o.cfg.redisKeyPrefix.replace(/[*?[\]\\]/g, "\\$&");
    await this.sub.psubscribe(`${channel}${glob}*:stock`, `${channel}${glob}*:price`);
    this.regions.start();
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
    const sku = m[1]!;
    const now = Date.now();
    this.counts.changes++;
    this.remember(sku, now);
    this.enqueue(sku, null, now);
  }

  /** Keeps `sku`'s change for a re-check while a region not yet known may turn out to hold its aggregate. */
  private remember(sku: string, now: number): void {
    const oldest = this.regions.oldestNeeded();
    if (oldest === Number.POSITIVE_INFINITY) return;
    this.recent.delete(sku);
    this.recent.set(sku, now);
    for (const [s, at] of this.recent) {
      if (at >= oldest && this.recent.size <= MAX_RECENT) break;
      this.recent.delete(s);
    }
  }

  /** `region` has just become known: the SKUs changed since `since` are looked up there too. */
  private recheck(region: string, since: number): void {
    const now = Date.now();
    for (const [sku, at] of this.recent) if (at >= since) this.enqueue(sku, region, now);
  }

  /** Queues `sku` for a re-warm in `region` (null: every region), superseding any attempt under way. */
  private enqueue(sku: string, region: string | null, now: number): void {
    const p = this.pending.get(sku);
    if (p) {
      p.version++;
      if (region === null) p.regions = null;
      else p.regions?.add(region);
      p.attempts = 0;
      p.dueAt = now;
    } else {
      if (this.pending.size >= MAX_PENDING) return this.drop(now);
      this.pending.set(sku, { version: 0, regions: region === null ? null : new Set([region]), attempts: 0, dueAt: now, inFlight: false });
    }
    this.schedule(FLUSH_EVERY_MS);
  }

  private drop(now: number): void {
    this.counts.dropped++;
    this.droppedSinceLog++;
    if (now - this.dropsLoggedAt < LOG_DROPS_EVERY_MS) return;
    this.o.log(`change watch: ${this.droppedSinceLog} changes dropped: ${MAX_PENDING} SKUs already wait for their re-warm (those keys refresh at their TTL)`);
    this.droppedSinceLog = 0;
    this.dropsLoggedAt = now;
  }

  /** Runs a flush within `ms`, unless one is due sooner. */
  private schedule(ms: number): void {
    if (this.closed) return;
    const at = Date.now() + ms;
    if (this.timer) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer);
    }
    this.timerAt = at;
    this.timer = setTimeout(() => this.flush(), ms);
  }

  private flush(): void {
    this.timer = null;
    if (this.closed || this.pending.size === 0) return;
    const now = Date.now();
    if (now < this.pausedUntil) return this.schedule(this.pausedUntil - now);
    if (this.inFlight >= MAX_IN_FLIGHT) return; // the end of an attempt flushes again
    const batch: [string, Pending][] = [];
    let nextDue = Number.POSITIVE_INFINITY;
    for (const entry of this.pending) {
      const p = entry[1];
      if (p.inFlight) continue;
      if (p.dueAt > now) nextDue = Math.min(nextDue, p.dueAt);
      else if (batch.push(entry) >= MAX_BATCH) break;
    }
    if (batch.length === MAX_BATCH) this.schedule(0);
    else if (nextDue !== Number.POSITIVE_INFINITY) this.schedule(nextDue - now);
    if (batch.length === 0) return;
    const versions = batch.map(([, p]) => {
      p.inFlight = true;
      return p.version;
    });
    this.inFlight++;
    void this.attempt(batch)
      .then((failedBySku) => this.settle(batch, versions, failedBySku))
      .catch((e: Error) => {
        // Not a refused batch (those are settled above): the edge Redis did not answer the PTTLs, or a fault of ours.
        this.o.log(`change watch: re-warming ${batch.length} changed SKUs failed: ${e.message}; retrying`);
        this.pause(undefined);
        this.settle(batch, versions, null);
      })
      .finally(() => {
        this.inFlight--;
        this.schedule(0);
      });
  }

  /** After a failed batch: no batch is sent for the node's Retry-After, or the watch's backoff, whichever is longer. */
  private pause(retryAfterMs: number | undefined): void {
    this.failures++;
    this.pausedUntil = Date.now() + Math.max(retryAfterMs ?? 0, backoffMs(this.failures));
  }

  /**
   * Settles each SKU of an attempt: done when no region failed, kept with the
   * regions that failed (all of them when `failedBySku` is null) and a
   * backoff, or, when it changed meanwhile, left as the change queued it.
   */
  private settle(batch: readonly [string, Pending][], versions: readonly number[], failedBySku: Map<string, Set<string>> | null): void {
    const now = Date.now();
    batch.forEach(([sku, p], i) => {
      p.inFlight = false;
      if (this.pending.get(sku) !== p || p.version !== versions[i]) return; // superseded: queued again as it is
      const failed = failedBySku === null ? p.regions : failedBySku.get(sku);
      if (failed !== undefined && (failed === null || failed.size > 0)) {
        p.regions = failed;
        p.attempts++;
        p.dueAt = now + backoffMs(p.attempts);
      } else {
        this.pending.delete(sku);
      }
    });
  }

  /**
   * Re-warms each SKU of `batch` in its regions where it has an aggregate,
   * with the rest of that aggregate's life as TTL; the regions that failed,
   * by SKU (a SKU with no aggregate left in a region is done there).
   */
  private async attempt(batch: readonly [string, Pending][]): Promise<Map<string, Set<string>>> {
    const { cfg } = this.o;
    const known = this.regions.regions();
    const asked = batch.map(([sku, p]) => [sku, p.regions ? [...p.regions] : known] as const);
    const p = this.client.pipeline();
    for (const [sku, regions] of asked) for (const region of regions) p.pttl(aggregateKey(cfg.redisKeyPrefix, sku, region));
    const out = await p.exec();
    if (!out) throw new Error("the edge Redis discarded the PTTL pipeline");
    const graceMs = Math.max(cfg.staleWhileRevalidateSeconds, cfg.staleIfErrorSeconds) * 1000;
    // Region → TTL → SKUs: the store keeps an aggregate its validity plus the stale grace.
    const groups = new Map<string, Map<number, string[]>>();
    const failed = new Map<string, Set<string>>();
    let i = 0;
    for (const [sku, regions] of asked) {
      for (const region of regions) {
        const [err, pttl] = out[i++] ?? [new Error("no answer"), null];
        if (err) {
          addRegion(failed, sku, region);
          continue;
        }
        if (typeof pttl !== "number" || pttl < 0) continue; // not warm there (-2), or no expiry to keep (-1)
        const left = Math.ceil((pttl - graceMs) / 1000);
        const ttl = left >= 1 ? Math.min(left, 86_400) : cfg.cacheTtlSeconds;
        const byTtl = groups.get(region) ?? groups.set(region, new Map()).get(region)!;
        const group = byTtl.get(ttl);
        if (group) group.push(sku);
        else byTtl.set(ttl, [sku]);
      }
    }
    let refused = false;
    for (const [region, byTtl] of groups) {
      for (const [ttl, skus] of byTtl) {
        // Once the node refused a batch, the rest of this attempt waits with it rather than be sent to be refused too.
        const outcome: Outcome = refused ? { ok: false, retryAfterMs: undefined } : await this.post(region, skus, ttl, failed);
        if (outcome.ok) continue;
        if (!refused) this.pause(outcome.retryAfterMs);
        refused = true;
        for (const sku of skus) addRegion(failed, sku, region);
        this.counts.retried += skus.length;
      }
    }
    return failed;
  }

  /** One batch: ok when the node took it (SKUs it answered `regional_unavailable` for are added to `failed`). */
  private async post(region: string, skus: string[], ttl: number, failed: Map<string, Set<string>>): Promise<Outcome> {
    const base = this.o.target();
    if (base === null) {
      this.o.log(`change watch: no process is running to re-warm ${skus.length} changed SKUs of ${region}; retrying`);
      return { ok: false, retryAfterMs: undefined };
    }
    try {
      const answer = await postBatch({ url: base, token: this.o.cfg.prewarmToken, region, skus, ttl, jobId: `changes-${Date.now()}`, timeoutMs: 10_000 });
      this.failures = 0;
      this.counts.rewarmed += answer.warmed;
      for (const f of answer.failed) {
        // The region could not be asked for a record the edge lacks: worth another try. Any other code is the answer for this version of the records.
        if (f.code !== "regional_unavailable") continue;
        addRegion(failed, f.sku, region);
        this.counts.retried++;
      }
      return { ok: true };
    } catch (e) {
      if (isBatchError(e) && !e.retryable) {
        // The node refuses this batch for good (a 4xx: a wrong token, a region it does not serve): retrying cannot help.
        this.counts.failed += skus.length;
        this.o.log(`change watch: ${base} refused re-warming ${skus.length} changed SKUs of ${region}: ${e.message}`);
        return { ok: true };
      }
      this.o.log(`change watch: re-warming ${skus.length} changed SKUs of ${region} failed, retrying: ${(e as Error).message}`);
      return { ok: false, retryAfterMs: isBatchError(e) ? e.retryAfterMs : undefined };
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.regions.close();
    this.sub.disconnect();
    this.client.disconnect();
  }
}

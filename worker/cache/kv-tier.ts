/**
 * The global tier of a Cloudflare deployment: a Workers KV namespace
 * (AGGREGATES_KV) behind each data centre's Cache API. The Cache API keeps
 * what a data centre wrote in that data centre; KV is one namespace for all
 * of them, eventually consistent (a write or a delete is seen everywhere
 * within KV_PROPAGATION_MS). What it holds:
 *
 *  - `{prefix}{sku}:agg:{region}`: an aggregate's entry (its text, as the
 *    edge Redis keeps it, after a line `ep1 {writtenAt}`), kept to its last
 *    validUntil plus the stale grace (at least KV's 60 s);
 *  - `{prefix}_hard:{tag}` and `{prefix}_soft:{tag}`: when the tag was last
 *    purged, hard or soft (a SKU's own tag is `sku:{sku}`), kept FENCE_MS.
 *    Two keys rather than one "hard soft" value, so a purge writes without
 *    reading first. An entry read here with a tag purged hard at or after its
 *    basis is absent, soft is stale: KV cannot be searched by tag, but every
 *    entry carries its tags, so a purge by tag costs one write per tag.
 *
 * KV allows 1,000 operations per invocation: a read costs one bulk get per
 * 100 keys and one per 50 tags of what it found; a prewarm one write per
 * SKU; a purge one bulk get per 100 SKU keys and one write per tag.
 */
import { metrics } from "../metrics";
import { FENCE_MS } from "../sources/edge-redis";
import { entryTags, type CachedAggregate, type StoreKey } from "./entry";
import { decodeEntry, encodeEntry, keepMs } from "./entry-text";
import { eachInLanes } from "./lanes";

/**
 * How long a KV write or delete may take to be seen in every data centre
 * (Cloudflare documents up to 60 s). The contract's KV_PROPAGATION_MS
 * (contract/prewarm.ts) is the same bound, as the scheduler knows it.
 */
export const KV_PROPAGATION_MS = 60_000;

/** KV could not be read or written (down, refused, over a limit). */
export class GlobalTierError extends Error {
  override readonly name = "GlobalTierError";
}

/** A purge that would take more KV writes than one invocation may make. */
export class GlobalPurgeTooLargeError extends Error {
  override readonly name = "GlobalPurgeTooLargeError";
}

/** The most tags (the SKUs' own among them) one purge may fence in KV: one write each, within KV's 1,000 operations per invocation. */
export const MAX_GLOBAL_FENCES = 800;

/** KV's shortest expirationTtl (s). */
const KV_MIN_TTL_S = 60;
/** Keys per bulk get (KV's limit). */
const KV_BULK = 100;
/** KV writes in flight at once for one batch. */
const KV_CONCURRENCY = 8;
/** The first line of every value of ours: a value without it is not an entry (or a damaged one). */
const VALUE_MARK = "ep1 ";

export function kvEntryKey(prefix: string, k: StoreKey): string {
  return `${prefix}${k.sku}:agg:${k.region}`;
}

function fenceKey(prefix: string, kind: "hard" | "soft", tag: string): string {
  return `${prefix}_${kind}:${tag}`;
}

/** A KV value: `ep1 {writtenAt}` on a line, then the entry's text. */
export function encodeKvValue(entry: CachedAggregate, writtenAt: number): string {
  return `${VALUE_MARK}${writtenAt}\n${encodeEntry(entry)}`;
}

/** The entry of a KV value and when it was written; null when the value is not one of ours or is damaged. */
export function decodeKvValue(text: string): { entry: CachedAggregate; writtenAt: number } | null {
  if (!text.startsWith(VALUE_MARK)) return null;
  const nl = text.indexOf("\n");
  const writtenAt = Number(text.slice(VALUE_MARK.length, nl));
  if (nl < 0 || !Number.isSafeInteger(writtenAt) || writtenAt <= 0) return null;
  const entry = decodeEntry(text.slice(nl + 1));
  return entry && entry.segments.length > 0 ? { entry, writtenAt } : null;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class KvTier {
  constructor(
    private readonly kv: KVNamespace,
    private readonly prefix: string,
    private readonly graceSeconds: number,
  ) {}

  /** Bulk gets of `keys` (text values), 100 at a time. */
  private async getAll(keys: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    try {
      for (const part of await Promise.all(chunks([...new Set(keys)], KV_BULK).map((c) => this.kv.get(c, "text")))) {
        for (const [k, v] of part) out.set(k, v);
      }
    } catch (e) {
      metrics.globalReads.inc({ result: "error" });
      throw new GlobalTierError(`Workers KV could not be read: ${(e as Error).message}`);
    }
    return out;
  }

  /**
   * The entries of `keys`, null where absent, damaged (counted, never
   * thrown) or purged hard since their basis; soft-purged ones are marked
   * so. Each carries `globalAt` (its write + the propagation bound).
   */
  async getMany(keys: readonly StoreKey[]): Promise<(CachedAggregate | null)[]> {
    if (keys.length === 0) return [];
    const values = await this.getAll(keys.map((k) => kvEntryKey(this.prefix, k)));
    const found = keys.map((k) => {
      const text = values.get(kvEntryKey(this.prefix, k));
      if (text === null || text === undefined) {
        metrics.globalReads.inc({ result: "miss" });
        return null;
      }
      const got = decodeKvValue(text);
      if (!got) {
        metrics.globalReads.inc({ result: "corrupt" });
        return null;
      }
      got.entry.globalAt = got.writtenAt + KV_PROPAGATION_MS;
      return got.entry;
    });
    const tags = [...new Set(found.flatMap((e) => (e ? entryTags(e).split(" ").filter((t) => t !== "") : [])))];
    const fences = await this.getAll(tags.flatMap((t) => [fenceKey(this.prefix, "hard", t), fenceKey(this.prefix, "soft", t)]));
    const at = (key: string): number => Number(fences.get(key) ?? 0) || 0;
    return found.map((e) => {
      if (!e) return null;
      let soft = false;
      for (const t of entryTags(e).split(" ")) {
        if (t === "") continue;
        if (at(fenceKey(this.prefix, "hard", t)) >= e.basis) {
          metrics.globalReads.inc({ result: "purged" });
          return null;
        }
        if (at(fenceKey(this.prefix, "soft", t)) >= e.basis) soft = true;
      }
      metrics.globalReads.inc({ result: "hit" });
      if (soft) e.soft = "purged";
      return e;
    });
  }

  /**
   * Writes each item (an entry with no segments deletes the key), KV_CONCURRENCY
   * at a time, and sets `globalAt` on the entries written. A write KV refuses
   * (down; the same key written less than 1 s before) is counted and leaves
   * that entry without `globalAt`: it is in this data centre only.
   */
  async putMany(items: readonly { key: StoreKey; entry: CachedAggregate }[], now: number): Promise<void> {
    const failed = await eachInLanes(items, KV_CONCURRENCY, async ({ key, entry }) => {
      if (entry.segments.length === 0) await this.kv.delete(kvEntryKey(this.prefix, key));
      else {
        const ttl = Math.max(KV_MIN_TTL_S, Math.ceil(keepMs(entry, now, this.graceSeconds) / 1000));
        await this.kv.put(kvEntryKey(this.prefix, key), encodeKvValue(entry, now), { expirationTtl: ttl });
        entry.globalAt = now + KV_PROPAGATION_MS;
      }
    });
    metrics.globalWrites.inc({ result: "ok" }, items.length - failed.length);
    if (failed.length > 0) metrics.globalWrites.inc({ result: "error" }, failed.length);
  }

  /**
   * A purge in KV: each tag fenced at `now` (hard or soft), which every data
   * centre applies to what it reads from KV once the fence has propagated.
   * How many of `keys` (the named SKUs in the regions known) held an entry
   * from before the purge. Throws GlobalTierError when a fence could not be
   * written (the purge is then not global: send it again).
   */
  async purge(tags: readonly string[], keys: readonly StoreKey[], soft: boolean, now: number): Promise<number> {
    if (tags.length > MAX_GLOBAL_FENCES) throw new GlobalPurgeTooLargeError(`a purge on Cloudflare writes one Workers KV fence per tag and per SKU: at most ${MAX_GLOBAL_FENCES} per request, got ${tags.length} (split it)`);
    const held = await this.getAll(keys.map((k) => kvEntryKey(this.prefix, k)));
    let n = 0;
    for (const v of held.values()) {
      const got = v === null ? null : decodeKvValue(v);
      if (got && got.entry.basis <= now) n++;
    }
    const ttl = Math.ceil(FENCE_MS / 1000);
    const failed = (await eachInLanes(tags, KV_CONCURRENCY, (tag) => this.kv.put(fenceKey(this.prefix, soft ? "soft" : "hard", tag), String(now), { expirationTtl: ttl }))).map((f) => f.item);
    if (failed.length > 0) {
      metrics.globalWrites.inc({ result: "error" }, failed.length);
      throw new GlobalTierError(`Workers KV did not take the purge of ${failed.length} of ${tags.length} tags (${failed.slice(0, 5).join(" ")}${failed.length > 5 ? " …" : ""})`);
    }
    metrics.globalWrites.inc({ result: "ok" }, tags.length);
    return n;
  }
}

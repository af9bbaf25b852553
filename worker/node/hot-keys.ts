/**
 * Hot keys, found rather than guessed (SPEC §5 `GET /v1/hot`): reads per SKU
 * and region over a recent window, in bounded memory whatever the traffic.
 *
 * Each isolate counts its reads in the current and the previous window of
 * WINDOW_MS (so "recent" is one to two windows). A count map that grows past
 * 2 × CAPACITY keys is pruned to its CAPACITY most-read keys: a key in the
 * long tail may lose its count (a lossy top-K), a hot one never does. Its
 * counts since the last flush are added, at most every FLUSH_EVERY_MS and in
 * the background of a node sync, to one sorted set per window in the edge
 * Redis (`{prefix}_node:hot:{window}`, trimmed to NODE_KEEP keys), so
 * `GET /v1/hot` gives the node's reads, all processes and isolates together.
 * A flush that timed out after Redis applied it may count its reads twice:
 * hotness is an estimate, not an account.
 */
import type { default as Redis } from "ioredis";
import type { MemKey } from "../cache/entry";

export const WINDOW_MS = 60_000;
/** Keys kept per count map after a prune. */
export const CAPACITY = 1000;
/** How often an isolate adds its counts to the node's. */
export const FLUSH_EVERY_MS = 1000;
/** Keys kept in the node's sorted set of one window. */
const NODE_KEEP = 5 * CAPACITY;
/** The most keys one flush adds to the node's counts: this isolate's most read since the last one (the long tail does not make a hot list). */
const FLUSH_TOP = 200;

export interface HotSku {
  sku: string;
  region: string;
  reads: number;
}

function bump(m: Map<MemKey, number>, key: MemKey): void {
  m.set(key, (m.get(key) ?? 0) + 1);
  if (m.size > 2 * CAPACITY) prune(m);
}

function prune(m: Map<MemKey, number>): void {
  const keep = [...m].sort((a, b) => b[1] - a[1]).slice(0, CAPACITY);
  m.clear();
  for (const [k, v] of keep) m.set(k, v);
}

export function nodeHotKey(prefix: string, window: number): string {
  return `${prefix}_node:hot:${window}`;
}

export class HotKeys {
  private window = 0;
  private current = new Map<MemKey, number>();
  private previous = new Map<MemKey, number>();
  /** Counts not yet added to the node's, and the window they belong to. */
  private pending = new Map<MemKey, number>();
  private pendingWindow = 0;
  private flushedAt = 0;

  /** Counts one read of `key` at `now`. */
  count(key: MemKey, now: number): void {
    const w = Math.floor(now / WINDOW_MS);
    if (w !== this.window) {
      this.previous = w === this.window + 1 ? this.current : new Map();
      this.current = new Map();
      this.window = w;
    }
    bump(this.current, key);
    if (w !== this.pendingWindow) {
      this.pending = new Map(); // counts of a window past: too late to matter
      this.pendingWindow = w;
    }
    bump(this.pending, key);
  }

  /** This isolate's most-read keys of `region` over the current and previous window. */
  top(n: number, region: string, now: number): HotSku[] {
    const w = Math.floor(now / WINDOW_MS);
    const recent = w === this.window ? [this.current, this.previous] : w === this.window + 1 ? [this.current] : [];
    const merged = new Map<MemKey, number>();
    for (const m of recent) for (const [k, v] of m) merged.set(k, (merged.get(k) ?? 0) + v);
    return rank(merged, n, region);
  }

  /** Whether a flush of this isolate's counts to the node's is due at `now`. */
  flushDue(now: number): boolean {
    return this.pending.size > 0 && now - this.flushedAt >= FLUSH_EVERY_MS;
  }

  /** Adds this isolate's counts since the last flush to the node's (one pipelined round trip). */
  async flush(client: Redis, prefix: string, now: number): Promise<void> {
    if (this.pending.size === 0) return;
    const counts = this.pending;
    const key = nodeHotKey(prefix, this.pendingWindow);
    this.pending = new Map();
    this.flushedAt = now;
    const p = client.pipeline();
    const top = counts.size <= FLUSH_TOP ? [...counts] : [...counts].sort((a, b) => b[1] - a[1]).slice(0, FLUSH_TOP);
    for (const [k, v] of top) p.zincrby(key, v, k);
    p.zremrangebyrank(key, 0, -(NODE_KEEP + 1));
    p.pexpire(key, 3 * WINDOW_MS);
    await p.exec();
  }

  /** The node's most-read keys of `region` over the current and previous window (after flushing this isolate's counts). */
  async nodeTop(client: Redis, prefix: string, n: number, region: string, now: number): Promise<HotSku[]> {
    await this.flush(client, prefix, now);
    const w = Math.floor(now / WINDOW_MS);
    const flat = await client.zunion(2, nodeHotKey(prefix, w), nodeHotKey(prefix, w - 1), "WITHSCORES");
    const merged = new Map<MemKey, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) merged.set(flat[i]!, Number(flat[i + 1]));
    return rank(merged, n, region);
  }
}

function rank(counts: Map<MemKey, number>, n: number, region: string): HotSku[] {
  const out: HotSku[] = [];
  for (const [k, reads] of counts) {
    const cut = k.indexOf("\n");
    if (k.slice(0, cut) === region) out.push({ sku: k.slice(cut + 1), region, reads });
  }
  return out.sort((a, b) => b.reads - a.reads || (a.sku < b.sku ? -1 : 1)).slice(0, n);
}

/** The isolate's read counts (module state, like its metrics). */
export const hotKeys = new HotKeys();

/**
 * What keeps the processes (isolates) of one node in step: a change log in
 * the edge Redis, and the bound on how long a process trusts its hot cache
 * without reading that log.
 *
 * A purge or a prewarm that replaces entries appends the keys it changed to
 * the log (a Redis stream), in the same atomic step as the store write. Each
 * process reads the log at most every SYNC_EVERY_MS (in the background of a
 * request, with its metrics flush, in one round trip) and drops the hot
 * entries other processes changed. A process serves from its hot cache only
 * while its last completed sync was *sent* less than TRUST_MS ago; past that
 * its reads go to the shared store until a sync completes. So a purge that
 * has answered stops being served everywhere within TRUST_MS (< 1 s,
 * SPEC §7), and a re-warmed entry is served everywhere within the same bound.
 *
 * A store read or a write that was in flight while the log dropped a key
 * must not put an older copy back into the hot cache: `mayKeep` checks the
 * key was not invalidated since the operation started (by generation).
 */
import type { ChainableCommander, default as Redis } from "ioredis";
import type { Config } from "../config";
import { nodeKey, type EdgeRedisSession } from "../sources/edge-redis";
import { hotKeys } from "./hot-keys";
import { gaugeValues, metrics, pendingDeltas, renderMetrics, type ProcessGauges } from "../metrics";
import type { MemKey, PurgeMatch } from "../cache/entry";

/** How often a busy process reads the change log. */
export const SYNC_EVERY_MS = 200;
/** How long after sending its last completed sync a process trusts its hot cache. */
export const TRUST_MS = 800;
/** Changes kept in the log (by age); a process that has not synced for longer clears its hot cache. */
export const LOG_KEEP_MS = 60_000;
/** The most log entries one sync reads; a process further behind clears its hot cache. */
const MAX_ENTRIES = 1000;
/** Generations of invalidations remembered for `mayKeep` (at SYNC_EVERY_MS each, ~10 s). */
const REMEMBERED_GENERATIONS = 50;
/** A process's gauges are part of the node's for this long after its last sync. */
const PROCESS_TTL_MS = 60_000;
/** How long a process's gauge hash (and its delta sequence number) outlives its last sync. */
const PROCESS_STATE_TTL_MS = 24 * 3_600_000;

/**
 * One round trip: reads the log after the cursor (or finds its end), records
 * the process as live with its gauges, and adds its counter deltas to the
 * node's totals, exactly once: a batch of deltas carries the process's
 * sequence number, kept in its gauge hash (`_seq`), and a batch sent again
 * after a timeout (which Redis may have applied) is not applied twice.
 * KEYS: changes, metrics, procs, this process's gauges.
 * ARGV: cursor ('' = start at the end), max entries, process id, now, liveness
 * window ms, gauge hash TTL ms, delta batch seq, G, G gauge (field, value)
 * pairs, then (series, delta) pairs.
 */
const SYNC = `local cursor, entries
if ARGV[1] == '' then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then cursor = last[1][1] else cursor = '0-0' end
  entries = {}
else
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
  if #entries > 0 then cursor = entries[#entries][1] else cursor = ARGV[1] end
end
local now = tonumber(ARGV[4])
redis.call('ZADD', KEYS[3], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]))
local seq = tonumber(ARGV[7])
local fresh = seq > tonumber(redis.call('HGET', KEYS[4], '_seq') or '0')
local g = tonumber(ARGV[8])
local i = 9
if g > 0 then redis.call('HSET', KEYS[4], unpack(ARGV, i, i + 2 * g - 1)) end
if fresh then redis.call('HSET', KEYS[4], '_seq', seq) end
redis.call('PEXPIRE', KEYS[4], ARGV[6])
i = i + 2 * g
while fresh and i < #ARGV do
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return {cursor, entries}`;

/**
 * The node's totals and the gauges of its live processes.
 * KEYS: metrics, procs. ARGV: now, process TTL ms, the key prefix of a process's gauges.
 */
const NODE_METRICS = `local live = redis.call('ZRANGEBYSCORE', KEYS[2], tonumber(ARGV[1]) - tonumber(ARGV[2]), '+inf')
local procs = {}
for i, id in ipairs(live) do procs[i] = redis.call('HGETALL', ARGV[3] .. id) end
return {redis.call('HGETALL', KEYS[1]), procs}`;

type LogEntry = [id: string, fields: string[]];

interface NodeScripts {
  nodeSync(...args: (string | number)[]): Promise<[string, LogEntry[]]>;
  nodeMetrics(...args: (string | number)[]): Promise<[string[], string[][]]>;
}

function withScripts(client: Redis): Redis & NodeScripts {
  if (!("nodeSync" in client)) {
    client.defineCommand("nodeSync", { numberOfKeys: 4, lua: SYNC });
    client.defineCommand("nodeMetrics", { numberOfKeys: 2, lua: NODE_METRICS });
  }
  return client as Redis & NodeScripts;
}


/**
 * This isolate's identity in the node and its counter flushes. They belong to
 * the isolate, as the metrics do, not to one configuration: in tests several
 * configurations share an isolate and its one set of counters.
 */
const isolate = {
  /** This isolate's id in the log and the process list (random values may not be made at start-up in workerd: made on first use). */
  id: "",
  seq: 0,
  /** The counter deltas being flushed, resent as they are (same seq) until a flush is known to have landed. */
  outstanding: null as { seq: number; deltas: [string, number][]; commit(): void } | null,
};

export class NodeSync {
  /** This isolate's id in the log and the process list. */
  get processId(): string {
    return (isolate.id ||= crypto.randomUUID());
  }
  /** Bumped by every sync that dropped keys. */
  generation = 0;
  private cursor = "";
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private running = false;
  private readonly invalidated = new Map<MemKey, number>();
  /** The generation of the last `clear`: nothing older may be kept. */
  private clearedAt = 0;

  constructor(
    private readonly cfg: Config,
    /** Drops one key from the hot cache; `all` empties it; a purge's match drops what it matches. How many entries went. */
    private readonly drop: (what: MemKey | "all" | PurgeMatch) => number,
  ) {}

  /** Whether the hot cache may answer at `now`. */
  trusted(now: number): boolean {
    return now - this.lastSentAt < TRUST_MS;
  }

  /** Whether a hot-cache write of `key` by an operation that started at generation `since` is still current. */
  mayKeep(key: MemKey, since: number): boolean {
    if (since < this.clearedAt || since < this.generation - REMEMBERED_GENERATIONS) return false;
    const at = this.invalidated.get(key);
    return at === undefined || at <= since;
  }

  /** Whether a background sync is due at `now`. */
  due(now: number): boolean {
    return !this.running && now - this.lastSentAt >= SYNC_EVERY_MS;
  }

  /** Starts a background sync when one is due. */
  poke(session: EdgeRedisSession, background: (work: Promise<unknown>) => void): void {
    if (this.due(Date.now())) background(this.sync(session).catch(() => undefined));
  }

  /** Reads the change log, publishes gauges and flushes counters, in one round trip (and, once a second, the hot-key counts in another). */
  async sync(session: EdgeRedisSession, then?: (client: Redis) => Promise<void>): Promise<void> {
    this.running = true;
    const sentAt = Date.now();
    const pending = (isolate.outstanding ??= { seq: ++isolate.seq, ...pendingDeltas() });
    // A process that has not synced for longer than the log keeps cannot know what it missed.
    const cursor = sentAt - this.lastSentAt > LOG_KEEP_MS - 10_000 ? "" : this.cursor;
    const gauges = gaugeValues();
    try {
      const [next, entries] = await session.exchange(
        async (client) => {
          const c = withScripts(client);
          const p = this.prefix;
          const result = c.nodeSync(
            nodeKey(p, "changes"), nodeKey(p, "metrics"), nodeKey(p, "procs"), nodeKey(p, `proc:${this.processId}`),
            cursor, MAX_ENTRIES, this.processId, sentAt, PROCESS_TTL_MS, PROCESS_STATE_TTL_MS, pending.seq, gauges.length,
            ...gauges.flat(), ...pending.deltas.flat(),
          );
          const out = await result;
          if (hotKeys.flushDue(sentAt)) await hotKeys.flush(client, p, sentAt);
          if (then) await then(client);
          return out;
        },
        { counted: false },
      );
      // Two syncs may carry the same batch (a /metrics read while a background sync runs): Redis applied it once, and it is committed once.
      if (isolate.outstanding === pending) {
        pending.commit();
        isolate.outstanding = null;
      }
      if (cursor === "" || entries.length >= MAX_ENTRIES) this.clear();
      else this.apply(entries);
      this.cursor = next;
      this.lastSentAt = Math.max(this.lastSentAt, sentAt);
      metrics.nodeSyncs.inc({ result: "ok" });
    } catch (e) {
      metrics.nodeSyncs.inc({ result: "error" });
      throw e;
    } finally {
      this.running = false;
    }
  }

  /** Forgets the whole hot cache: what changed is not known. */
  private clear(): void {
    this.drop("all");
    this.generation++;
    this.clearedAt = this.generation;
    this.invalidated.clear();
  }

  private apply(entries: readonly LogEntry[]): void {
    let dropped = 0;
    const gen = this.generation + 1;
    for (const [, fields] of entries) {
      const f = fieldsOf(fields);
      if (f.get("p") === this.processId) continue; // our own change: applied when we made it
      const tags = f.get("t");
      if (tags !== undefined) {
        metrics.hotCacheInvalidations.inc({}, this.purged({ tags: new Set(tags.split(" ")), region: f.get("r") || null }));
        continue;
      }
      for (const key of (f.get("k") ?? "").split(",")) {
        if (key === "") continue;
        const memKey = key.replace(":", "\n");
        this.drop(memKey);
        this.markInvalidated(memKey, gen);
        dropped++;
      }
    }
    if (dropped === 0) return;
    this.generation = gen;
    metrics.hotCacheInvalidations.inc({}, dropped);
    this.forgetBefore(gen - REMEMBERED_GENERATIONS);
  }

  /**
   * A purge by tag (this process's or another's): the hot entries it matches
   * are dropped, and no operation of this process that started before it
   * keeps what it read or computed (its keys are not known one by one).
   */
  purged(match: PurgeMatch): number {
    const dropped = this.drop(match);
    this.generation++;
    this.clearedAt = this.generation;
    return dropped;
  }

  /**
   * A change this process made itself (a purge, a prewarm): operations of
   * this process that started before it may not keep their older copies in
   * the hot cache (`mayKeep`), as if another process had made it.
   */
  invalidate(keys: readonly MemKey[]): void {
    if (keys.length === 0) return;
    const gen = ++this.generation;
    for (const k of keys) this.markInvalidated(k, gen);
    this.forgetBefore(gen - REMEMBERED_GENERATIONS);
  }

  /** Records `key` as invalidated at `gen`, at the end of the map: the map stays in generation order. */
  private markInvalidated(key: MemKey, gen: number): void {
    this.invalidated.delete(key);
    this.invalidated.set(key, gen);
  }

  /** Forgets invalidations older than `gen` (from the front: the map is in generation order). */
  private forgetBefore(gen: number): void {
    for (const [k, g] of this.invalidated) {
      if (g >= gen) break;
      this.invalidated.delete(k);
    }
  }

  /** The change log's key. */
  get logKey(): string {
    return nodeKey(this.prefix, "changes");
  }

  /** The oldest log entry id kept when appending at `now` (trimmed by age). */
  logMinId(now: number): number {
    return Math.max(0, now - LOG_KEEP_MS);
  }

  /** How a key is written in the log (`region:sku`). */
  logEntryKey(key: MemKey): string {
    return key.replace("\n", ":");
  }

  /** Appends a change of `keys` to the log: part of the caller's atomic write. */
  append(batch: ChainableCommander, keys: readonly MemKey[]): void {
    if (keys.length === 0) return;
    batch.xadd(this.logKey, "MINID", "~", this.logMinId(Date.now()), "*", "p", this.processId, "k", keys.map((k) => this.logEntryKey(k)).join(","));
  }

  /** The node's metrics: flushes this isolate's counters, then reads the node's totals, in one round trip. */
  async renderNodeMetrics(session: EdgeRedisSession): Promise<string> {
    let text = "";
    await this.sync(session, async (client) => {
      const [flat, procs] = await withScripts(client).nodeMetrics(nodeKey(this.prefix, "metrics"), nodeKey(this.prefix, "procs"), Date.now(), PROCESS_TTL_MS, nodeKey(this.prefix, "proc:"));
      const totals = new Map<string, number>();
      for (let i = 0; i + 1 < flat.length; i += 2) totals.set(flat[i]!, Number(flat[i + 1]));
      const processes = procs.map((p) => {
        const g: Record<string, number> = {};
        for (let i = 0; i + 1 < p.length; i += 2) g[p[i]!] = Number(p[i + 1]);
        return g as ProcessGauges;
      });
      this.lastNode = { totals, processes };
      text = renderMetrics(totals, processes);
    });
    return text;
  }

  /** When the edge Redis cannot be reached: the node's totals as last read, plus what this isolate counted since. */
  renderLastKnown(): string {
    const totals = new Map(this.lastNode.totals);
    // What was counted since the last flush that landed (an outstanding batch is not yet committed either).
    for (const [k, d] of pendingDeltas().deltas) totals.set(k, (totals.get(k) ?? 0) + d);
    const own = Object.fromEntries(gaugeValues()) as ProcessGauges;
    return renderMetrics(totals, this.lastNode.processes.length > 0 ? this.lastNode.processes : [own], "# node totals as last read, plus this process's counts since: the edge Redis could not be reached\n");
  }

  private lastNode: { totals: Map<string, number>; processes: ProcessGauges[] } = { totals: new Map(), processes: [] };

  private get prefix(): string {
    return this.cfg.redisKeyPrefix;
  }
}

function fieldsOf(flat: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
  return m;
}

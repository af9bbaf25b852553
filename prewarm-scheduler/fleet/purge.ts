/**
 * Fleet purges (`prewarm purge`, `POST /v1/purge` on the ops API): one purge
 * (SKUs and/or tags, hard or soft, SPEC §9) sent to every target node, the
 * config's nodes and the registry's, with each node's answer: the count it
 * purged, or why it did not confirm.
 *
 * A node that did not confirm (down, absent from the registry, its store
 * unavailable, ...) is not forgotten: its purge stays pending and is sent
 * again, oldest first, at the node's next announce (its heartbeat reaches
 * the ops API) and by the background retry of every process running workers
 * (every second at first, then every REPLAY_MAX_BACKOFF_MS), until the node
 * confirms or the purge is older than REPLAY_FOR_MS: by then nothing the
 * node cached before the purge can still be served (the longest TTL a plan
 * or the node can set, plus the longest stale grace). A node coming back
 * thus loses the purged aggregates within one announce, or one retry, of
 * coming back.
 *
 * Recorded like a run, in the scheduler's Redis, bounded by the same
 * retention (the newest `retention.runs` purges, none past `maxAgeDays`; a
 * purge still pending on a node is kept until it settles):
 *
 *   {prefix}:purges              sorted set of purge ids by creation time
 *   {prefix}:purge:{id}          hash: meta (JSON: who, when, what, targets), node|<name> (JSON: that node's result)
 *   {prefix}:purge:{id}:open     set of the nodes that have not confirmed (nor expired)
 *   {prefix}:purges:pending      sorted set of `<node>|<purge id>` by when to send it again
 */
import { hostname, userInfo } from "node:os";
import pLimit from "p-limit";
import { z } from "zod";
import { isValidRegion, isValidSku } from "../../contract/ids";
import { MAX_PURGE_ENTRIES, type PurgeRequest } from "../../contract/purge";
import { isValidTag, TAG_KINDS } from "../../contract/tags";
import { PurgeError, postPurge } from "../../contract/purge-client";
import type { EdgeNodeConfig, SchedulerConfig } from "../config/config";
import type { SchedulerRedis } from "../redis/redis";
import type { NodeRegistry } from "./registry";
import { asNode } from "./registry";
import { describeIssues, InvalidFileError } from "../config/schema-errors";
import { within } from "../redis/within";

/** How long a purge is sent again to a node that has not confirmed it: the longest TTL (86,400 s) plus the longest stale grace (86,400 s). */
export const REPLAY_FOR_MS = 2 * 86_400_000;
/** The longest wait between two tries of a pending purge on a node (the first comes after 1 s, then doubling). */
export const REPLAY_MAX_BACKOFF_MS = 5000;
/** Nodes asked at once by one fan-out or one replay round. */
const FANOUT = 32;
/** Purges dropped at most per trim. */
const TRIM_BATCH = 100;

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "must be a node name (lowercase letters, digits and dashes)" });
const tagRule = `must be kind:value, kind one of ${TAG_KINDS.join(", ")}, value 1-128 printable ASCII characters without spaces`;

export const purgeSchema = z
  .strictObject({
    skus: z
      .array(z.string().refine(isValidSku, { error: "must be a SKU id (letters, digits, . _ -; up to 64)" }))
      .min(1, { error: "must not be empty" })
      .max(MAX_PURGE_ENTRIES, { error: `at most ${MAX_PURGE_ENTRIES} SKUs per purge: split it into several purges` })
      .optional(),
    tags: z
      .array(z.string().refine(isValidTag, { error: tagRule }))
      .min(1, { error: "must not be empty" })
      .max(MAX_PURGE_ENTRIES, { error: `at most ${MAX_PURGE_ENTRIES} tags per purge: split it into several purges` })
      .optional(),
    soft: z.boolean().default(false),
    region: z.string().refine(isValidRegion, { error: "must be a region name like cn-east" }).optional(),
    /** Only these nodes (of the fleet). */
    nodes: z.array(name).min(1, { error: "must not be empty" }).max(10_000).optional(),
    /** Who asks, as the caller says (recorded; the ops API records the caller's address beside it). */
    by: z.string().regex(/^[\x21-\x7e]{1,64}$/, { error: "must be 1-64 printable ASCII characters without spaces" }).optional(),
  })
  .refine((p) => p.skus !== undefined || p.tags !== undefined, { error: "a purge names skus or tags (or both)" });

export type PurgeInput = z.output<typeof purgeSchema>;

/** Validates a purge (the CLI's options or the ops API's body) before anything is sent; an InvalidFileError naming each bad field. */
export function parsePurge(input: unknown, source = "purge"): PurgeInput {
  const r = purgeSchema.safeParse(input);
  if (!r.success) throw new InvalidFileError(source, describeIssues(r.error));
  const p = r.data;
  return { ...p, ...(p.skus ? { skus: [...new Set(p.skus)] } : {}), ...(p.tags ? { tags: [...new Set(p.tags)] } : {}) };
}

/** Who asked for a purge. */
export interface PurgeWho {
  via: "cli" | "api";
  /** The CLI's OS user, or the `by` the API caller gave. */
  user?: string;
  /** The CLI's host, or the API caller's address. */
  host?: string;
}

/** The CLI user, as recorded. */
export function cliUser(): PurgeWho {
  let user = process.env["USER"] ?? "";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): $USER, if any
  }
  return { via: "cli", ...(user ? { user } : {}), host: hostname() };
}

export interface PurgeMeta {
  purgeId: string;
  kind: "purge";
  by: PurgeWho;
  createdAt: number;
  /** What each node is sent. */
  request: PurgeRequest & { soft: boolean };
  /** The restriction asked for (`--nodes`), if any. */
  only?: string[];
  nodes: { name: string; region: string }[];
}

export interface NodePurgeResult {
  name: string;
  region: string;
  /** `purged`: the node confirmed; `pending`: not yet (sent again until it confirms); `expired`: it never confirmed within REPLAY_FOR_MS. */
  status: "purged" | "pending" | "expired";
  /** What the node purged (when it confirmed). */
  purged?: number;
  /** Why the last try did not confirm: `node_unreachable`, `timeout`, `node_absent`, `unauthorized`, `bad_request`, `store_unavailable`, `unsupported`, `http_<status>`, `bad_answer`. */
  code?: string;
  message?: string;
  attempts: number;
  at: number;
  /** Confirmed by a later try (a replay), not by the purge's own fan-out. */
  replayed?: boolean;
}

export interface PurgeReport extends PurgeMeta {
  /** Every target node confirmed. */
  ok: boolean;
  confirmed: number;
  pending: number;
  /** Aggregates purged, over the nodes that confirmed. */
  purged: number;
  results: NodePurgeResult[];
}

const SETTLE = `
-- KEYS: hash, open, pending; ARGV: node, result JSON, final (1/0), member, due
-- A result is kept only while the node is open: the first confirmation wins, a late failure changes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[4]) return 0 end
if ARGV[3] == '1' then
  if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
  redis.call('ZREM', KEYS[3], ARGV[4])
else
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[4]) return 0 end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
end
redis.call('HSET', KEYS[1], 'node|' .. ARGV[1], ARGV[2])
return 1
`;

const CLAIM_DUE = `
-- KEYS: pending; ARGV: now, lease until, limit: the due members, each leased (so one process sends it at a time)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m) end
return due
`;

const TRIM = `
-- KEYS: purges; ARGV: keep, cutoff, hash prefix, most: drops the oldest settled purges past the newest keep, and those before cutoff
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
local dropped = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1, 'WITHSCORES')
for j = 1, #oldest, 2 do
  local id, at = oldest[j], tonumber(oldest[j + 1])
  if (j - 1) / 2 >= excess and at >= tonumber(ARGV[2]) then break end
  local hash = ARGV[3] .. id
  if redis.call('SCARD', hash .. ':open') == 0 then
    redis.call('DEL', hash, hash .. ':open')
    redis.call('ZREM', KEYS[1], id)
    dropped = dropped + 1
  end
end
return dropped
`;

type PurgeRedis = SchedulerRedis & {
  prewarmSettlePurge(hash: string, open: string, pending: string, ...args: (string | number)[]): Promise<number>;
  prewarmClaimPurges(pending: string, ...args: (string | number)[]): Promise<string[]>;
  prewarmTrimPurges(purges: string, ...args: (string | number)[]): Promise<number>;
};

const SCRIPTS = {
  prewarmSettlePurge: { numberOfKeys: 3, lua: SETTLE },
  prewarmClaimPurges: { numberOfKeys: 1, lua: CLAIM_DUE },
  prewarmTrimPurges: { numberOfKeys: 1, lua: TRIM },
};

/** `purge-20261111T000000123Z-ab12`: sorts by time. */
function newPurgeId(at: number): string {
  return `purge-${new Date(at).toISOString().replace(/[-:.]/g, "")}-${Math.random().toString(36).slice(2, 6)}`;
}

export function isPurgeId(id: string): boolean {
  return id.startsWith("purge-");
}

/** A target of a purge: a node to send it to, or one the registry lists as absent (it gets the purge when it comes back). */
interface Target {
  name: string;
  region: string;
  node: EdgeNodeConfig | null;
}

export class FleetPurge {
  private readonly redis: PurgeRedis;

  constructor(
    redis: SchedulerRedis,
    private readonly cfg: SchedulerConfig,
    private readonly registry: NodeRegistry,
    /** The error a purge fails with when the scheduler's Redis does not record it within `redisTimeoutMs`. */
    private readonly redisTimeout: () => Error,
  ) {
    for (const [n, def] of Object.entries(SCRIPTS)) if (!(n in redis)) redis.defineCommand(n, def);
    this.redis = redis as PurgeRedis;
  }

  private get idsKey(): string {
    return `${this.cfg.prefix}:purges`;
  }
  private hash(id: string): string {
    return `${this.cfg.prefix}:purge:${id}`;
  }
  private get pendingKey(): string {
    return `${this.cfg.prefix}:purges:pending`;
  }
  private get retentionSeconds(): number {
    return Math.max(1, Math.ceil(this.cfg.retention.maxAgeDays * 86_400));
  }

  /** The nodes a purge goes to: the config's, and the registry's live and absent ones (not those its allow-list refuses). */
  private async targets(p: PurgeInput): Promise<Target[]> {
    const registered = (await this.registry.list()).filter((n) => n.state !== "refused");
    let all: Target[] = [
      ...this.cfg.nodes.map((n) => ({ name: n.name, region: n.region, node: n })),
      ...registered.map((n) => ({ name: n.name, region: n.region, node: n.state === "live" ? asNode(n) : null })),
    ];
    const problems: string[] = [];
    if (p.nodes) {
      const unknown = p.nodes.filter((n) => !all.some((t) => t.name === n));
      if (unknown.length > 0) problems.push(`nodes: not in the fleet (config or registry): ${unknown.join(", ")}`);
      all = all.filter((t) => p.nodes!.includes(t.name));
    }
    if (p.region !== undefined) all = all.filter((t) => t.region === p.region);
    if (problems.length === 0 && all.length === 0) problems.push(p.region !== undefined ? `region: no target node serves ${p.region}` : "no target node: the fleet is empty");
    if (problems.length > 0) throw new InvalidFileError("purge", problems);
    return all;
  }

  /** The body each node is sent. */
  private static request(p: PurgeInput): PurgeRequest & { soft: boolean } {
    return { ...(p.region !== undefined ? { region: p.region } : {}), ...(p.skus ? { skus: p.skus } : {}), ...(p.tags ? { tags: p.tags } : {}), soft: p.soft };
  }

  /** The body on the wire: `soft` only when true, so a hard purge of SKUs is what every node version understands. */
  private static wire(r: PurgeMeta["request"]): PurgeRequest {
    const { soft, ...rest } = r;
    return soft ? { ...rest, soft } : rest;
  }

  /** Sends a purge to every target node and records it; the report says what each node did. Throws InvalidFileError on bad input (nothing sent). */
  async purge(p: PurgeInput, by: PurgeWho, now = Date.now()): Promise<PurgeReport> {
    const targets = await this.targets(p);
    const meta: PurgeMeta = {
      purgeId: newPurgeId(now),
      kind: "purge",
      by,
      createdAt: now,
      request: FleetPurge.request(p),
      ...(p.nodes ? { only: p.nodes } : {}),
      nodes: targets.map((t) => ({ name: t.name, region: t.region })),
    };
    const id = meta.purgeId;
    // Recorded first, every node pending (leased for the fan-out's time): a process that dies mid-fan-out leaves it to the replays.
    const lease = now + this.cfg.requestTimeoutMs + 5000;
    const m = this.redis.multi().hset(this.hash(id), "meta", JSON.stringify(meta));
    for (const t of targets) m.hset(this.hash(id), `node|${t.name}`, JSON.stringify({ name: t.name, region: t.region, status: "pending", code: "sending", attempts: 0, at: now } satisfies NodePurgeResult));
    m.sadd(`${this.hash(id)}:open`, ...targets.map((t) => t.name))
      .expire(this.hash(id), this.retentionSeconds)
      .expire(`${this.hash(id)}:open`, this.retentionSeconds)
      .zadd(this.idsKey, now, id)
      .zadd(this.pendingKey, ...targets.flatMap((t) => [lease, `${t.name}|${id}`]));
    await within(m.exec(), this.cfg.redisTimeoutMs, this.redisTimeout);
    await this.trim(now).catch(() => 0);
    const limit = pLimit(FANOUT);
    await Promise.all(targets.map((t) => limit(() => this.send(meta, t.name, t.node, 1, false))));
    return (await this.report(id))!;
  }

  /** One try of a purge on one node, recorded: confirmed, or pending with the reason and when to try again. */
  private async send(meta: PurgeMeta, name: string, node: EdgeNodeConfig | null, attempt: number, replay: boolean): Promise<boolean> {
    const region = meta.nodes.find((n) => n.name === name)?.region ?? node?.region ?? "";
    const base = { name, region, attempts: attempt, at: Date.now() };
    let result: NodePurgeResult;
    if (node === null) {
      result = { ...base, status: "pending", code: "node_absent", message: `${name} is not announcing itself (absent from the registry): it gets the purge when it comes back` };
    } else {
      try {
        const answer = await postPurge({ url: node.url, token: node.token ?? this.cfg.token, body: FleetPurge.wire(meta.request), timeoutMs: this.cfg.requestTimeoutMs });
        result = { ...base, status: "purged", purged: answer.purged, ...(replay ? { replayed: true } : {}) };
      } catch (e) {
        if (!(e instanceof PurgeError)) throw e;
        result = { ...base, status: "pending", code: e.code, message: e.message };
      }
    }
    const final = result.status === "purged";
    const due = Date.now() + Math.min(1000 * 2 ** (attempt - 1), REPLAY_MAX_BACKOFF_MS);
    await this.redis.prewarmSettlePurge(this.hash(meta.purgeId), `${this.hash(meta.purgeId)}:open`, this.pendingKey, name, JSON.stringify(result), final ? 1 : 0, `${name}|${meta.purgeId}`, due);
    return final;
  }

  /** Sends a pending purge again to its node, or lets it expire; false when it is not pending any more. */
  private async replay(member: string, now: number): Promise<boolean> {
    const bar = member.indexOf("|");
    const name = member.slice(0, bar);
    const id = member.slice(bar + 1);
    const [rawMeta, rawNode] = await this.redis.hmget(this.hash(id), "meta", `node|${name}`);
    if (!rawMeta || !rawNode) {
      await this.redis.zrem(this.pendingKey, member); // its record is gone
      return false;
    }
    const meta = JSON.parse(rawMeta) as PurgeMeta;
    const last = JSON.parse(rawNode) as NodePurgeResult;
    if (now - meta.createdAt >= REPLAY_FOR_MS) {
      const expired: NodePurgeResult = { ...last, status: "expired", message: `not confirmed within ${REPLAY_FOR_MS / 3_600_000} h (last: ${last.code ?? "?"}); nothing cached before it can be served any more` };
      await this.redis.prewarmSettlePurge(this.hash(id), `${this.hash(id)}:open`, this.pendingKey, name, JSON.stringify(expired), 1, member, 0);
      return false;
    }
    return this.send(meta, name, await this.nodeNow(name), last.attempts + 1, true);
  }

  /** A node as it is now: from the config, or the registry if it is live there; null when absent or unknown. */
  private async nodeNow(name: string): Promise<EdgeNodeConfig | null> {
    const fixed = this.cfg.nodes.find((n) => n.name === name);
    if (fixed) return fixed;
    const entry = (await this.registry.list()).find((n) => n.name === name);
    return entry?.state === "live" ? asNode(entry) : null;
  }

  /** Sends again every purge due for a retry (the workers' sweep); returns how many were confirmed. */
  async replayDue(now = Date.now()): Promise<number> {
    const due = await this.redis.prewarmClaimPurges(this.pendingKey, now, now + this.cfg.requestTimeoutMs + 5000, 200);
    return this.replayAll(due, now);
  }

  /** Sends a node every purge it has not confirmed, oldest first (at its announce: it is back); returns how many it confirmed. */
  async replayNode(name: string, now = Date.now()): Promise<number> {
    const mine: string[] = [];
    let cursor = "0";
    do {
      const [next, found] = await this.redis.zscan(this.pendingKey, cursor, "MATCH", `${name}|*`, "COUNT", 1000);
      for (let i = 0; i < found.length; i += 2) mine.push(found[i]!);
      cursor = next;
    } while (cursor !== "0");
    if (mine.length === 0) return 0;
    await this.redis.zadd(this.pendingKey, "XX", ...mine.flatMap((m) => [now + this.cfg.requestTimeoutMs + 5000, m]));
    // One node: in order, so a later purge is never overtaken by an earlier one.
    let confirmed = 0;
    for (const m of mine.sort()) if (await this.replay(m, now)) confirmed++;
    return confirmed;
  }

  private async replayAll(members: readonly string[], now: number): Promise<number> {
    // Per node in order (purge ids sort by time), the nodes in parallel.
    const byNode = new Map<string, string[]>();
    for (const m of [...members].sort()) {
      const n = m.slice(0, m.indexOf("|"));
      byNode.set(n, [...(byNode.get(n) ?? []), m]);
    }
    let confirmed = 0;
    const limit = pLimit(FANOUT);
    await Promise.all(
      [...byNode.values()].map((list) =>
        limit(async () => {
          for (const m of list) if (await this.replay(m, now)) confirmed++;
        }),
      ),
    );
    return confirmed;
  }

  /** How many (node, purge) pairs are waiting to be confirmed. */
  async pendingCount(): Promise<number> {
    return this.redis.zcard(this.pendingKey);
  }

  /** Drops the settled purges past the retention (at most 100 a call); returns how many. */
  async trim(now = Date.now()): Promise<number> {
    return this.redis.prewarmTrimPurges(this.idsKey, this.cfg.retention.runs, now - this.cfg.retention.maxAgeDays * 86_400_000, this.hash(""), TRIM_BATCH);
  }

  /** The newest purges first. */
  async list(limit = 20): Promise<string[]> {
    return this.redis.zrevrange(this.idsKey, 0, limit - 1);
  }

  async report(id: string): Promise<PurgeReport | null> {
    if (!isPurgeId(id)) return null;
    const hash = await this.redis.hgetall(this.hash(id));
    if (!hash["meta"]) return null;
    const meta = JSON.parse(hash["meta"]) as PurgeMeta;
    const results = meta.nodes.map((n): NodePurgeResult => {
      const raw = hash[`node|${n.name}`];
      return raw ? (JSON.parse(raw) as NodePurgeResult) : { name: n.name, region: n.region, status: "pending", code: "sending", attempts: 0, at: meta.createdAt };
    });
    const confirmed = results.filter((r) => r.status === "purged").length;
    return {
      ...meta,
      ok: confirmed === results.length,
      confirmed,
      pending: results.filter((r) => r.status === "pending").length,
      purged: results.reduce((s, r) => s + (r.purged ?? 0), 0),
      results,
    };
  }
}

/** What a purge asked, in one line (`tags promo:X, sku:1 (soft) in cn-east`). */
export function describePurge(m: Pick<PurgeMeta, "request">): string {
  const r = m.request;
  const list = (what: string, xs: readonly string[] | undefined): string | null => (xs ? `${what} ${xs.slice(0, 5).join(", ")}${xs.length > 5 ? ` (+${xs.length - 5})` : ""}` : null);
  return [[list("skus", r.skus), list("tags", r.tags)].filter((x) => x !== null).join("; "), r.soft ? "(soft)" : "", r.region !== undefined ? `in ${r.region}` : ""].filter((x) => x !== "").join(" ");
}

/** Who asked, in one word or two. */
export function describeWho(w: PurgeWho): string {
  return `${w.via}${w.user ? `:${w.user}` : ""}${w.host ? `@${w.host}` : ""}`;
}

/** A purge's report for a terminal: one line per node. */
export function formatPurge(r: PurgeReport): string {
  const head = `purge ${r.purgeId}: ${describePurge(r)}, by ${describeWho(r.by)} at ${new Date(r.createdAt).toISOString()}`;
  const lines = r.results.map((n) => {
    const what =
      n.status === "purged"
        ? `purged ${n.purged}${n.replayed ? ` (replayed, try ${n.attempts})` : ""}`
        : n.status === "expired"
          ? `never confirmed (${n.code ?? "?"}); given up`
          : `NOT CONFIRMED: ${n.code ?? "?"}${n.code === "sending" ? "" : " (sent again until it confirms)"}`;
    return `  ${n.name.padEnd(24)} ${n.region.padEnd(10)} ${what}`;
  });
  return [head, ...lines, `${r.confirmed} of ${r.results.length} nodes confirmed, ${r.purged} aggregates purged`].join("\n");
}

/**
 * The live node registry: edge nodes that announce themselves (a self-hosted
 * node's supervisor, every few seconds: its heartbeat) or that ops add by
 * hand, beside the config's static list. Kept in the scheduler's Redis, so
 * every scheduler process sees the same fleet.
 *
 * Closed by default: a registry node gets the fleet's token with every batch,
 * so its URL must match one of the config's `nodeUrlAllow` patterns (none by
 * default: no node can join; `url-allow.ts`), and announcing needs the
 * config's `registryToken` (none by default: announcing is off). The URL is
 * kept as it was matched (rebuilt from its parsed parts), and checked again
 * whenever the registry is read: an entry the allow-list no longer allows
 * (written before it was narrowed, or by an older, laxer check) is
 * `refused` and gets no batch. A node that stopped announcing for
 * `nodeAbsentAfterMs` is absent: its batches fail as `node_absent` at once
 * instead of being retried until the deadline; one silent for
 * `retention.forgetNodesAfterDays` is dropped from the registry.
 *
 *   {prefix}:registry   hash: node name -> entry (JSON)
 */
import type { SchedulerRedis } from "../redis/redis";
import { z } from "zod";
import { isValidRegion } from "../../contract/ids";
import { RULES_VERSION_RE } from "../../contract/prewarm";
import type { EdgeNodeConfig, SchedulerConfig } from "../config/config";
import { describeIssues, InvalidFileError } from "../config/schema-errors";
import { allowedUrl, parseUrlPatterns, type UrlPattern } from "../config/url-allow";

export const entrySchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "must be lowercase letters, digits and dashes (1-63 chars)" }),
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).transform((u) => u.replace(/\/+$/, "")),
  region: z.string().refine(isValidRegion, { error: "must be a region name like cn-east" }),
  processes: z.int().min(1).max(1024).optional(),
  version: z.string().max(100).optional(),
  /** The rules version the node runs (SPEC §9), announced with every heartbeat. */
  rules: z.string().regex(RULES_VERSION_RE, { error: "must be a rules version: 12 lowercase hex digits" }).optional(),
});

export interface RegistryEntry extends z.output<typeof entrySchema> {
  /** `announced` (a node's heartbeat) or `added` (by ops: never absent). */
  source: "announced" | "added";
  lastSeen: number;
}

export interface NodeState extends RegistryEntry {
  /** `refused`: its URL does not match the config's nodeUrlAllow (any more). */
  state: "live" | "absent" | "refused";
}

/** KEYS: registry; ARGV: name, entry pairs: deletes each entry still as read, returns the names deleted. */
const FORGET = `
local out = {}
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) out[#out + 1] = ARGV[i] end
end
return out
`;

export class NodeRegistry {
  /** The config's nodeUrlAllow, read (the config's validation has already named a pattern that cannot be). */
  private readonly allow: UrlPattern[];

  constructor(
    private readonly redis: SchedulerRedis,
    private readonly cfg: SchedulerConfig,
  ) {
    this.allow = parseUrlPatterns(cfg.nodeUrlAllow);
  }

  private get key(): string {
    return `${this.cfg.prefix}:registry`;
  }

  /** Validates an entry: its fields, its URL against the allow-list, its name against the static list. */
  private check(input: unknown, source: string): z.output<typeof entrySchema> {
    const r = entrySchema.safeParse(input);
    if (!r.success) throw new InvalidFileError(source, describeIssues(r.error));
    const e = r.data;
    if (this.cfg.nodes.some((n) => n.name === e.name)) throw new InvalidFileError(source, [`name: ${e.name} is a node of the config file; the registry cannot replace it`]);
    // The URL is not echoed: only whether it passed.
    const url = allowedUrl(e.url, this.allow);
    if (url === null) throw new InvalidFileError(source, ["url: not allowed by the config's nodeUrlAllow (the fleet's token is only sent to the URLs the operator allows)"]);
    return { ...e, url };
  }

  /** A node's heartbeat: registers or refreshes it. */
  async announce(input: unknown, now = Date.now()): Promise<RegistryEntry> {
    const e: RegistryEntry = { ...this.check(input, "announce"), source: "announced", lastSeen: now };
    await this.redis.hset(this.key, e.name, JSON.stringify(e));
    return e;
  }

  /** Adds a node by hand (it does not need to announce itself, and is never absent). */
  async add(input: unknown, now = Date.now()): Promise<RegistryEntry> {
    const e: RegistryEntry = { ...this.check(input, "node"), source: "added", lastSeen: now };
    await this.redis.hset(this.key, e.name, JSON.stringify(e));
    return e;
  }

  async remove(name: string): Promise<boolean> {
    return (await this.redis.hdel(this.key, name)) === 1;
  }

  /**
   * Forgets the nodes that announced themselves and have been silent for
   * `afterMs` (nodes added by hand stay), so the registry does not grow with
   * every name a node ever had. An entry refreshed meanwhile is kept (compared
   * and deleted in one script). Returns the names forgotten.
   */
  async forgetSilent(afterMs: number, now = Date.now()): Promise<string[]> {
    const all = await this.redis.hgetall(this.key);
    const silent = Object.entries(all).filter(([, raw]) => {
      const e = JSON.parse(raw) as RegistryEntry;
      return e.source === "announced" && now - e.lastSeen >= afterMs;
    });
    if (silent.length === 0) return [];
    const forgotten = (await this.redis.eval(FORGET, 1, this.key, ...silent.flat())) as string[];
    return forgotten;
  }

  async list(now = Date.now()): Promise<NodeState[]> {
    const all = await this.redis.hgetall(this.key);
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as RegistryEntry)
      .map((e): NodeState => {
        const url = allowedUrl(e.url, this.allow);
        if (url === null) return { ...e, state: "refused" };
        return { ...e, url, state: e.source === "added" || now - e.lastSeen < this.cfg.nodeAbsentAfterMs ? "live" : "absent" };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** A registry entry as a node the engine sends batches to (with the fleet's token). */
export function asNode(e: RegistryEntry): EdgeNodeConfig {
  return { name: e.name, url: e.url, region: e.region };
}

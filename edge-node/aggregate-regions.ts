/**
 * The regions the node holds aggregates in, for the change watch: a changed
 * record makes stale every aggregate of its SKU (`{prefix}{sku}:agg:{region}`),
 * whatever region it was computed for.
 *
 * With EDGE_REGIONS set, those are the only regions the node serves: the
 * list is fixed. Unset, any region name is served (a read of `?region=x`
 * writes an aggregate of `x`), and Redis has no index of keys by SKU: a SCAN
 * per changed SKU would cost the whole keyspace each time. Instead one paced
 * SCAN of the aggregate keys runs in the background, learning the region
 * names (a handful on a real node): a call of SCAN_COUNT keys every
 * SCAN_EVERY_MS (about 0.6 µs of Redis per key, so ~1 % of a Redis core at
 * most), a pass at most every PASS_EVERY_MS. A region is known from the pass
 * that first sees it (at most a pass and a bit after its first aggregate: ~1 s
 * on a small store, ~5 s at 100,000 keys), and forgotten after a whole pass
 * that sees none of its aggregates. When a region becomes known, `onNew` is
 * told since when changes may have missed it (the start of the previous pass:
 * an aggregate that existed all through that pass would have been seen then),
 * so the watch re-checks the SKUs changed since in that region: such a change
 * is served late, never lost.
 *
 * At most MAX_REGIONS regions are watched: aggregates of regions past that
 * are counted, logged once per pass, and refresh at their TTL (a node that
 * serves that many regions should list them in EDGE_REGIONS).
 */
import type { Redis } from "ioredis";
import { isValidRegion } from "../contract/ids";
import type { Config } from "../worker/config";

/** Keys one SCAN call looks at. */
const SCAN_COUNT = 1000;
/** The pause between two SCAN calls of a pass. */
const SCAN_EVERY_MS = 50;
/** A pass starts at most this often. */
const PASS_EVERY_MS = 1000;
/** The most regions watched when EDGE_REGIONS is unset. */
export const MAX_REGIONS = 64;

export interface AggregateRegionsOptions {
  cfg: Config;
  /** The connection the SCAN runs on. */
  client: Redis;
  log: (line: string) => void;
  /** `region` is known from now on; a change since `since` (ms epoch) may have missed its aggregates. */
  onNew: (region: string, since: number) => void;
}

export class AggregateRegions {
  /** Region → the pass that last saw it (EDGE_REGION: never forgotten). */
  private readonly known = new Map<string, number>();
  private readonly fixed: readonly string[] | null;
  private list: string[];
  private pass = 0;
  private passStartedAt = 0;
  private previousPassStartedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Regions seen past MAX_REGIONS in the current pass. */
  private overCap = new Set<string>();

  constructor(private readonly o: AggregateRegionsOptions) {
    this.fixed = o.cfg.edgeRegions;
    this.known.set(o.cfg.edgeRegion, Number.POSITIVE_INFINITY);
    this.list = this.fixed ? [...this.fixed] : [o.cfg.edgeRegion];
  }

  /** The regions to look for a changed SKU's aggregates in. */
  regions(): readonly string[] {
    return this.list;
  }

  /** Changes older than this (ms epoch) can no longer need a re-check: nothing is discovered that far back. */
  oldestNeeded(): number {
    return this.fixed ? Number.POSITIVE_INFINITY : this.previousPassStartedAt;
  }

  start(): void {
    if (this.fixed) return;
    this.previousPassStartedAt = Date.now();
    this.nextPass();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private nextPass(): void {
    if (this.closed) return;
    this.pass++;
    this.previousPassStartedAt = this.passStartedAt || this.previousPassStartedAt;
    this.passStartedAt = Date.now();
    this.overCap = new Set();
    void this.scan("0");
  }

  private async scan(cursor: string): Promise<void> {
    if (this.closed) return;
    let next = cursor;
    try {
      const prefix = this.o.cfg.redisKeyPrefix;
      const glob = prefix.replace(/[*?[\]\\]/g, "\\$&");
      const [c, keys] = await this.o.client.scan(cursor, "MATCH", `${glob}*:agg:*`, "COUNT", SCAN_COUNT);
      next = c;
      for (const key of keys) {
        // {prefix}{sku}:agg:{region}; a SKU id holds no ':'.
        const rest = key.slice(prefix.length);
        const at = rest.indexOf(":agg:");
        if (at > 0) this.saw(rest.slice(at + 5));
      }
    } catch {
      // The edge Redis is away: try again at the pace of the scan (the watch reconnects by itself).
    }
    if (this.closed) return;
    if (next !== "0") {
      this.timer = setTimeout(() => void this.scan(next), SCAN_EVERY_MS);
      return;
    }
    this.endPass();
    this.timer = setTimeout(() => this.nextPass(), Math.max(SCAN_EVERY_MS, this.passStartedAt + PASS_EVERY_MS - Date.now()));
  }

  private saw(region: string): void {
    if (!isValidRegion(region)) return;
    const seen = this.known.get(region);
    if (seen !== undefined) {
      if (seen !== Number.POSITIVE_INFINITY) this.known.set(region, this.pass);
      return;
    }
    if (this.known.size >= MAX_REGIONS) {
      this.overCap.add(region);
      return;
    }
    this.known.set(region, this.pass);
    this.list = [...this.known.keys()];
    this.o.log(`change watch: the node holds aggregates of region ${region}: its changes re-warm them too`);
    this.o.onNew(region, this.previousPassStartedAt);
  }

  /** Forgets regions this whole pass did not see (their aggregates are gone). */
  private endPass(): void {
    let forgot = false;
    for (const [region, seen] of this.known) {
      if (seen < this.pass) {
        this.known.delete(region);
        forgot = true;
      }
    }
    if (forgot) this.list = [...this.known.keys()];
    if (this.overCap.size > 0) {
      this.o.log(`change watch: aggregates of ${this.overCap.size} more regions are not watched (at most ${MAX_REGIONS}; they refresh at their TTL): set EDGE_REGIONS`);
    }
  }
}

/**
 * Change notices (`POST /v1/changes {skus, regions?}` on the ops API): for
 * edge nodes where no supervisor watches the edge Redis (Cloudflare), the feed
 * that changed stock or price records tells the scheduler, which re-warms
 * those SKUs on the nodes of those regions (all nodes when none are named).
 *
 * Notices are collected for WINDOW_MS per set of regions and de-duplicated;
 * each window becomes one run (plan `changes`, with the node's default TTL),
 * fanned out, retried and reported like any run. Every notice of a window
 * answers with that run's id.
 */
import { z } from "zod";
import { isValidRegion, isValidSku } from "../../contract/ids";
import type { Engine } from "./engine";
import { parsePlan, targetNodes } from "../plans/plan";
import { describeIssues, InvalidFileError } from "../config/schema-errors";

/** How long notices are collected before their run starts. */
export const WINDOW_MS = 250;
/** The most SKUs one notice may carry. */
export const MAX_NOTICE_SKUS = 10_000;

export const noticeSchema = z.strictObject({
  skus: z
    .array(z.string().refine(isValidSku, { error: (i) => `not a SKU id: ${JSON.stringify(i.input)}` }))
    .min(1, { error: "must list at least one SKU" })
    .max(MAX_NOTICE_SKUS, { error: `at most ${MAX_NOTICE_SKUS} SKUs per notice` }),
  regions: z.array(z.string().refine(isValidRegion, { error: "not a region name" })).min(1).optional(),
});

export type Notice = z.output<typeof noticeSchema>;

interface Window {
  skus: Set<string>;
  regions: string[] | undefined;
  run: Promise<string>;
  start: () => void;
}

export class ChangeFanout {
  private readonly open = new Map<string, Window>();

  constructor(private readonly engine: Engine) {}

  /** Validates a notice and adds it to its window; resolves with the id of the run that re-warms it. */
  async notify(body: unknown): Promise<string> {
    const r = noticeSchema.safeParse(body);
    if (!r.success) throw new InvalidFileError("notice", describeIssues(r.error));
    const regions = r.data.regions ? [...new Set(r.data.regions)].sort() : undefined;
    // Refuse regions no node serves now, in the caller's answer, not later in a worker.
    targetNodes(this.plan(["x"], regions), await this.engine.fleet(), "notice");
    const key = regions?.join(",") ?? "*";
    let w = this.open.get(key);
    if (!w) {
      let start!: () => void;
      const started = new Promise<void>((res) => (start = res));
      const win: Window = { skus: new Set(), regions, start: () => start(), run: started.then(() => this.engine.startRun(this.plan([...win.skus], regions), "changes")) };
      w = win;
      this.open.set(key, win);
      setTimeout(() => {
        this.open.delete(key);
        win.start();
      }, WINDOW_MS);
    }
    for (const sku of r.data.skus) w.skus.add(sku);
    return w.run;
  }

  private plan(skus: string[], regions: string[] | undefined) {
    return parsePlan({ name: "changes", skus: { list: skus }, ...(regions ? { targets: { regions } } : {}), deadline: "2m" }, "notice", "api");
  }
}

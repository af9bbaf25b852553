/** Which region a request is for, and whether this node answers for it (EDGE_REGION, EDGE_REGIONS). */
import type { Config } from "../config";
import { HttpError } from "./errors";
import { isValidRegion } from "../../contract/ids";

/**
 * The region a request names (`raw`), or the node's EDGE_REGION when it names
 * none; 400 `bad_request` when it is not a region name, or not one of the
 * node's EDGE_REGIONS when those are set: junk regions would otherwise make
 * entries that push warmed keys out of the hot cache.
 */
/** Whether this node answers for `region` (EDGE_REGIONS; any region when unset). */
export function answersFor(cfg: Config, region: string): boolean {
  return cfg.edgeRegions === null || cfg.edgeRegions.includes(region);
}

export function requestRegion(cfg: Config, raw: unknown): string {
  if (raw === undefined || raw === "") return cfg.edgeRegion;
  if (typeof raw !== "string" || !isValidRegion(raw)) {
    throw new HttpError("bad_request", `region must be one region name matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, got ${JSON.stringify(raw)}`);
  }
  if (!answersFor(cfg, raw)) {
    throw new HttpError("bad_request", `this node answers for ${cfg.edgeRegions!.join(", ")} (EDGE_REGIONS), not ${JSON.stringify(raw)}`);
  }
  return raw;
}

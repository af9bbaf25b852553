/**
 * POST /v1/purge (SPEC §9): purges the aggregates of a SKU list, or with any
 * of a list of tags, in one region or every region the node holds; hard
 * (removed) or soft (kept stale: the next read gets it as STALE while one
 * recomputation replaces it). This process's memory and the shared store at
 * once, every other process's memory within 1 s (SPEC §7, `node/sync.ts`).
 */
import type { IRequest } from "itty-router";
import type { Deps } from "../aggregates";
import { requireBearer } from "./auth";
import { readBody, validated } from "./body";
import { inflight } from "../isolate";
import { HttpError } from "./errors";
import { requestRegion } from "./region";
import { purgeRequestSchema } from "../../contract/purge";
import { PurgeUnsupportedError, type Purge } from "../cache/store";
import { EdgeRedisError } from "../sources/edge-redis";
import { GlobalPurgeTooLargeError, GlobalTierError } from "../cache/kv-tier";
import { memKey } from "../cache/entry";

/** Validates the decoded body (the contract's schema); nothing is purged unless all of it is good. */
export function parsePurge(body: unknown, deps: Deps): Purge {
  const b = validated(purgeRequestSchema, body, (i) => (i.code === "too_big" && i.path.length === 1 ? "payload_too_large" : i.path[0] === "skus" && i.path.length === 2 ? "invalid_sku" : undefined));
  const region = b.region === undefined ? null : requestRegion(deps.cfg, b.region);
  return { region, skus: [...new Set(b.skus ?? [])], tags: [...new Set(b.tags ?? [])], soft: b.soft === true };
}

export async function purge(request: IRequest, deps: Deps): Promise<Response> {
  requireBearer(request, deps.cfg.prewarmToken);
  deps.sync.poke(deps.redis, deps.background);
  const p = parsePurge(await readBody(request), deps);
  let purged: number;
  try {
    purged = await deps.cache.purge(p);
  } catch (e) {
    if (e instanceof PurgeUnsupportedError) throw new HttpError("not_implemented", e.message);
    if (e instanceof GlobalPurgeTooLargeError) throw new HttpError("payload_too_large", e.message);
    if (e instanceof GlobalTierError) throw new HttpError("store_unavailable", `${e.message}: other data centres may still serve what was purged (send it again)`, { "Retry-After": "1" });
    if (!(e instanceof EdgeRedisError)) throw e;
    throw new HttpError("store_unavailable", "the node's aggregate store could not be purged (the purge may have taken effect in part: send it again)", { "Retry-After": "1" });
  } finally {
    // Settled computations of this process must not hand what they found to newcomers.
    const region = p.region;
    if (p.tags.length === 0 && region !== null) inflight.forget(p.skus.map((sku) => memKey(region, sku)));
    else inflight.forgetAll();
  }
  return Response.json({ purged, soft: p.soft, ...(p.region !== null ? { region: p.region } : {}) }, { headers: { "Cache-Control": "no-store" } });
}

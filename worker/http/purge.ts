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
import { readBody } from "./body";
import { inflight } from "../isolate";
import { HttpError } from "./errors";
import { isValidSku } from "../../contract/ids";
import { isValidTag, tagProblem } from "../../contract/tags";
import { requestRegion } from "./region";
import { MAX_PURGE_ENTRIES } from "../../contract/purge";
import { PurgeUnsupportedError, type Purge } from "../cache/store";
import { EdgeRedisError } from "../sources/edge-redis";
import { GlobalPurgeTooLargeError, GlobalTierError } from "../cache/kv-tier";
import { memKey } from "../cache/entry";

/** A list field of the body: absent is empty; at most MAX_PURGE_ENTRIES entries, each checked by `valid`. */
function listOf(body: Record<string, unknown>, field: "skus" | "tags", valid: (v: unknown) => v is string, problem: (v: unknown) => string): string[] {
  const v = body[field];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new HttpError("bad_request", `${field} must be an array`);
  if (v.length > MAX_PURGE_ENTRIES) throw new HttpError("payload_too_large", `at most ${MAX_PURGE_ENTRIES} ${field} per purge, got ${v.length}`);
  const bad = v.findIndex((x) => !valid(x));
  if (bad >= 0) throw new HttpError(field === "skus" ? "invalid_sku" : "bad_request", `${field}[${bad}]: ${problem(v[bad])}`);
  return [...new Set(v as string[])];
}

/** Validates the decoded body; nothing is purged unless all of it is good. */
export function parsePurge(body: unknown, deps: Deps): Purge {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError("bad_request", "body must be an object {region?, skus?, tags?, soft?}");
  const b = body as Record<string, unknown>;
  const skus = listOf(b, "skus", isValidSku, (s) => `not a SKU id: ${JSON.stringify(s)}`);
  const tags = listOf(b, "tags", isValidTag, tagProblem);
  if (skus.length === 0 && tags.length === 0) throw new HttpError("bad_request", "name what to purge: skus, tags or both (non-empty)");
  if (b["soft"] !== undefined && typeof b["soft"] !== "boolean") throw new HttpError("bad_request", `soft must be true or false, got ${JSON.stringify(b["soft"])}`);
  const region = b["region"] === undefined ? null : requestRegion(deps.cfg, b["region"]);
  return { region, skus, tags, soft: b["soft"] === true };
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

/**
 * POST /v1/purge (SPEC §5): removes the aggregates of a SKU list from the
 * node's edge cache: this process's memory and the shared store at once, and
 * every other process's memory within 1 s (SPEC §7, `node-sync.ts`).
 */
import type { IRequest } from "itty-router";
import type { Deps } from "../aggregates";
import { requireBearer } from "./auth";
import { readBody } from "./body";
import { inflight } from "../isolate";
import { HttpError } from "./errors";
import { isValidSku } from "../../contract/ids";
import { requestRegion } from "./region";
import { MAX_BATCH } from "../../contract/prewarm";
import { storeKey } from "../cache/entry";

export async function purge(request: IRequest, deps: Deps): Promise<Response> {
  requireBearer(request, deps.cfg.prewarmToken);
  deps.sync.poke(deps.redis, deps.background);
  const body = await readBody(request);
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new HttpError("bad_request", "body must be an object {region?, skus}");
  const { skus } = body as Record<string, unknown>;
  const region = requestRegion(deps.cfg, (body as Record<string, unknown>)["region"]);
  if (!Array.isArray(skus) || skus.length === 0) throw new HttpError("bad_request", "skus must be a non-empty array of SKU ids");
  if (skus.length > MAX_BATCH) throw new HttpError("payload_too_large", `at most ${MAX_BATCH} SKUs per purge, got ${skus.length}`);
  const bad = skus.findIndex((s) => !isValidSku(s));
  if (bad >= 0) throw new HttpError("invalid_sku", `skus[${bad}] is not a SKU id: ${JSON.stringify(skus[bad])}`);
  const unique = [...new Set(skus as string[])];
  let deleted: boolean[];
  try {
    const keys = unique.map((sku) => storeKey(sku, region));
    deleted = await deps.cache.deleteMany(keys);
    inflight.forget(keys.map((k) => k.mem));
  } catch (e) {
    throw new HttpError("store_unavailable", `the node's aggregate store could not be purged: ${(e as Error).message}`, { "Retry-After": "1" });
  }
  return Response.json(
    { region, purged: deleted.filter(Boolean).length, notCached: unique.filter((_, i) => !deleted[i]) },
    { headers: { "Cache-Control": "no-store" } },
  );
}

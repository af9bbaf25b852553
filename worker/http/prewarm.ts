/**
 * POST /v1/prewarm (SPEC §5): validates a batch, computes every aggregate
 * (one Redis round trip, one Wasm call) and writes each to the edge cache.
 * Idempotent: the same batch again rewrites the same keys.
 */
import type { IRequest } from "itty-router";
import { computeAggregates, storeAggregates, type Deps } from "../aggregates";
import { requireBearer } from "./auth";
import { readBody } from "./body";
import { MAX_TTL_SECONDS, type Config } from "../config";
import { HttpError } from "./errors";
import { MAX_BATCH, type PrewarmAnswer } from "../../contract/prewarm";
import { isValidSku } from "../../contract/ids";
import { isValidTag, MAX_REQUEST_TAGS, tagProblem } from "../../contract/tags";
import { requestRegion } from "./region";
import { RULES_VERSION } from "../rules/version";
import { inflight } from "../isolate";
import { metrics } from "../metrics";
import { memKey } from "../cache/entry";
import type { WriteResult } from "../cache/edge-cache";

export interface PrewarmBatch {
  region: string;
  skus: string[];
  ttlSeconds: number;
  /** Up to this much is taken off each SKU's TTL (by SKU). */
  ttlJitterSeconds: number;
  /** Tags added to every aggregate of the batch (SPEC §9). */
  tags: string[];
  jobId: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Validates the decoded body; field errors name the field. */
export function parseBatch(body: unknown, cfg: Config): PrewarmBatch {
  if (!isRecord(body)) throw new HttpError("bad_request", "body must be an object {region?, skus, ttl?, ttlJitter?, tags?, jobId?}");
  const { skus, ttl = cfg.cacheTtlSeconds, ttlJitter = 0, tags = [], jobId } = body;
  const region = requestRegion(cfg, body["region"]);
  if (!Array.isArray(skus)) throw new HttpError("bad_request", "skus must be an array of SKU ids");
  if (skus.length === 0) throw new HttpError("bad_request", "skus must not be empty");
  if (skus.length > MAX_BATCH) throw new HttpError("payload_too_large", `at most ${MAX_BATCH} SKUs per batch, got ${skus.length}`);
  const bad = skus.findIndex((s) => typeof s !== "string");
  if (bad >= 0) throw new HttpError("bad_request", `skus[${bad}] must be a string, got ${JSON.stringify(skus[bad])}`);
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS) {
    throw new HttpError("bad_request", `ttl must be an integer number of seconds in 1..${MAX_TTL_SECONDS}, got ${JSON.stringify(ttl)}`);
  }
  if (typeof ttlJitter !== "number" || !Number.isInteger(ttlJitter) || ttlJitter < 0 || ttlJitter >= ttl) {
    throw new HttpError("bad_request", `ttlJitter must be an integer number of seconds in 0..${ttl - 1} (below ttl), got ${JSON.stringify(ttlJitter)}`);
  }
  if (!Array.isArray(tags)) throw new HttpError("bad_request", "tags must be an array of tags (kind:value)");
  if (tags.length > MAX_REQUEST_TAGS) throw new HttpError("bad_request", `at most ${MAX_REQUEST_TAGS} tags per batch, got ${tags.length}`);
  const badTag = tags.findIndex((t) => !isValidTag(t));
  if (badTag >= 0) throw new HttpError("bad_request", `tags[${badTag}]: ${tagProblem(tags[badTag])}`);
  if (jobId !== undefined && (typeof jobId !== "string" || jobId.length === 0 || jobId.length > 200)) {
    throw new HttpError("bad_request", "jobId must be a non-empty string of at most 200 characters");
  }
  return { region, skus: skus as string[], ttlSeconds: ttl, ttlJitterSeconds: ttlJitter, tags: tags as string[], jobId: jobId ?? crypto.randomUUID() };
}

export async function prewarm(request: IRequest, deps: Deps): Promise<Response> {
  const started = Date.now();
  requireBearer(request, deps.cfg.prewarmToken);
  deps.sync.poke(deps.redis, deps.background);
  const batch = parseBatch(await readBody(request), deps.cfg);

  const unique = [...new Set(batch.skus)];
  const valid = unique.filter(isValidSku);
  const failed: PrewarmAnswer["failed"] = unique.filter((s) => !isValidSku(s)).map((sku) => ({ sku, code: "invalid_sku" }));

  const outcomes = await computeAggregates(deps, { skus: valid, region: batch.region, ttlSeconds: batch.ttlSeconds, ttlJitterSeconds: batch.ttlJitterSeconds, tags: batch.tags }, "prewarm");
  let written: Map<string, WriteResult>;
  try {
    // A SKU found not_found replaces its aggregate (a negative entry): a SKU whose records are gone does not stay warm.
    written = await storeAggregates(deps.cache, batch.region, outcomes, Date.now(), "prewarm", deps.cfg.negativeTtlSeconds);
    // A read computed just before must not hand its older result to newcomers.
    inflight.forget(valid.map((sku) => memKey(batch.region, sku)));
  } catch (e) {
    // Nothing is warmed unless the node's shared store has it: the whole batch is retried.
    throw new HttpError("store_unavailable", `the node's aggregate store did not take the batch: ${(e as Error).message}`, { "Retry-After": "1" });
  }

  let fromEdge = 0;
  let fromRegional = 0;
  for (const o of outcomes) {
    if (!o.ok) failed.push({ sku: o.sku, code: o.code });
    // Its records were read before a purge of the key that came while it was computed: not written, to be sent again.
    else if (written.get(o.sku) === "purged") failed.push({ sku: o.sku, code: "purged" });
    else if (o.source === "edge") fromEdge++;
    else fromRegional++;
  }
  // Global only when KV took every warmed aggregate; else what was warmed is in this data centre alone.
  let scope = deps.cache.scope;
  let globalAt: number | undefined;
  if (scope === "global") {
    for (const o of outcomes) {
      if (!o.ok || written.get(o.sku) !== "written") continue;
      if (o.entry.globalAt === undefined) scope = "data-centre";
      else globalAt = Math.max(globalAt ?? 0, o.entry.globalAt);
    }
    if (scope !== "global") globalAt = undefined;
  }
  const answer: PrewarmAnswer = {
    jobId: batch.jobId,
    region: batch.region,
    warmed: fromEdge + fromRegional,
    fromEdge,
    fromRegional,
    failed,
    durationMs: Date.now() - started,
    rules: RULES_VERSION,
    scope,
    ...(globalAt !== undefined ? { globalAt } : {}),
  };
  metrics.prewarmSkus.inc({ result: "warmed" }, answer.warmed);
  metrics.prewarmSkus.inc({ result: "failed" }, failed.length);
  metrics.prewarmBatchSeconds.observe(answer.durationMs / 1000);
  return Response.json(answer, { headers: { "Cache-Control": "no-store" } });
}

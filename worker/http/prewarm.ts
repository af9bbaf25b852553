/**
 * POST /v1/prewarm (SPEC §5): validates a batch, computes every aggregate
 * (one Redis round trip, one Wasm call) and writes each to the edge cache.
 * Idempotent: the same batch again rewrites the same keys.
 */
import type { IRequest } from "itty-router";
import { computeAggregates, storeAggregates, type Deps } from "../aggregates";
import { requireBearer } from "./auth";
import { readBody, validated } from "./body";
import type { Config } from "../config";
import { HttpError } from "./errors";
import { prewarmRequestSchema, type PrewarmAnswer } from "../../contract/prewarm";
import { isValidSku } from "../../contract/ids";
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

/** Validates the decoded body (the contract's schema, then what depends on the node's config); field errors name the field. */
export function parseBatch(body: unknown, cfg: Config): PrewarmBatch {
  const b = validated(prewarmRequestSchema, body, (i) => (i.code === "too_big" && i.path.length === 1 && i.path[0] === "skus" ? "payload_too_large" : undefined));
  const region = requestRegion(cfg, b.region);
  const ttl = b.ttl ?? cfg.cacheTtlSeconds;
  const ttlJitter = b.ttlJitter ?? 0;
  if (ttlJitter >= ttl) throw new HttpError("bad_request", `ttlJitter must be an integer number of seconds in 0..${ttl - 1} (below ttl), got ${ttlJitter}`);
  return { region, skus: b.skus, ttlSeconds: ttl, ttlJitterSeconds: ttlJitter, tags: b.tags ?? [], jobId: b.jobId ?? crypto.randomUUID() };
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

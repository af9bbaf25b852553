/**
 * The edge node's API (SPEC §5) as an OpenAPI 3.1 document, generated from
 * the contract's zod schemas the worker validates with, and the error codes
 * of `errors.ts`. Not part of the bundle's code: `npm run openapi` writes it
 * to docs/openapi/edge-node.json, which the router serves at GET /openapi.json.
 */
import * as z from "zod/mini";
import { buildDocument, type HeaderSpec, type JsonSchema, type OperationSpec } from "../../contract/openapi";
import { prewarmAnswerSchema, prewarmRequestSchema, regionParamSchema } from "../../contract/prewarm";
import { purgeAnswerSchema, purgeRequestSchema } from "../../contract/purge";
import { aggregateSchema, healthAnswerSchema, hotAnswerSchema, multiGetAnswerSchema, STALE_REASONS } from "../../contract/edge-answers";
import { HTTP_ERRORS, type HttpErrorCode } from "./errors";
import { MAX_IDS } from "../../contract/ids";
import { CAPACITY } from "../node/hot-keys";
import { version } from "../../package.json";

const digits = z.string().check(z.regex(/^\d+$/));
const retryAfter: Record<string, HeaderSpec> = { "Retry-After": { schema: digits, description: "seconds to wait before asking again", required: true } };
const noStore: HeaderSpec = { schema: z.string(), description: "`no-store`: not for shared caches", required: true };

/** The error answers of `codes`, grouped by their status (HTTP_ERRORS), with the headers they carry. */
function errors(...codes: HttpErrorCode[]): OperationSpec["errors"] {
  const out: OperationSpec["errors"] = {};
  for (const code of [...codes, "internal" as const]) {
    const status = HTTP_ERRORS[code];
    const e = (out[status] ??= { codes: [], description: DESCRIPTIONS[status] ?? "error" });
    (e.codes as HttpErrorCode[]).push(code);
    if (code === "regional_unavailable" || code === "store_unavailable" || code === "overloaded") e.headers = retryAfter;
    if (code === "unauthorized") e.headers = { "WWW-Authenticate": { schema: z.string(), description: "the scheme (Bearer), when the token is missing or wrong" } };
  }
  return out;
}

const DESCRIPTIONS: Record<number, string> = {
  400: "bad input, named in the message",
  401: "a missing or wrong bearer token, or no token configured on the node (closed by default)",
  404: "unknown SKU: neither the edge nor the region has it",
  413: "batch or body too large",
  415: "the body is neither JSON nor MessagePack",
  500: "an unexpected error; the node's log has it under the id in the message",
  501: "not possible on this store",
  502: "the SKU's records are invalid",
  503: "no data can be had, the store is unavailable or the node is overloaded: try again after Retry-After",
  504: "only-if-cached, and the key is not cached",
};

const region = { name: "region", in: "query" as const, schema: regionParamSchema, description: "the region; default the node's EDGE_REGION (400 if the node does not answer for it: EDGE_REGIONS)" };

const readHeaders: Record<string, HeaderSpec> = {
  "Cache-Control": { schema: z.string().check(z.regex(/^public, max-age=\d+$/)), description: "`public, max-age=N`: N seconds until the aggregate's validUntil", required: true },
  Age: { schema: digits, description: "seconds since the aggregate was computed", required: true },
  ETag: { schema: z.string().check(z.regex(/^(W\/)?"[^"]*"$/)), description: "the aggregate's entity tag (304 on If-None-Match)", required: true },
  "X-Cache": { schema: z.enum(["HIT", "MISS", "STALE"]), description: "HIT: from the cache, fresh; MISS: computed for this read; STALE: past its TTL, served while it is computed again (or nothing fresh can be had)", required: true },
  "Surrogate-Key": { schema: z.string(), description: "the aggregate's tags (SPEC §9), space-separated: what a purge by tag matches", required: true },
  "X-Rules-Version": { schema: z.string().check(z.regex(/^[0-9a-f]{12}$/)), description: "the rules version that computed it (SPEC §9)", required: true },
  "X-Cached-Until": { schema: digits, description: "a look (only-if-cached): until when (ms) the cache answers for the key without computing it" },
  "X-Stale-Because": { schema: z.enum(STALE_REASONS), description: "a look answered STALE: why (its TTL ran out, a soft purge, other rules)" },
  "X-Global-At": { schema: digits, description: "a look on a node with a global tier: when (ms) every data centre sees the cached copy" },
};

const onlyIfCached = { name: "Cache-Control", in: "header" as const, schema: z.string(), description: "`only-if-cached`: a look, from the cache alone (504 not_cached when the key is not cached); reads no record, stores nothing" };
const token = (what: string) => ({ name: "Authorization", in: "header" as const, schema: z.string(), description: `Bearer <PREWARM_TOKEN> (${what})` });
const bodyTypes = ["application/json", "application/msgpack"];

export const EDGE_OPERATIONS: OperationSpec[] = [
  {
    method: "get",
    path: "/v1/skus/{sku}",
    operationId: "getSku",
    summary: "One SKU's aggregate",
    description: "From the cache when fresh (HIT); else computed read-through, once per key however many reads wait (MISS), and cached. Past its TTL it is served STALE while it is computed again.",
    tags: ["reads"],
    params: [
      { name: "sku", in: "path", schema: z.string(), description: "the SKU id (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$; else 400 invalid_sku)" },
      region,
      onlyIfCached,
      { name: "If-None-Match", in: "header", schema: z.string(), description: "entity tags: 304 when the aggregate's matches" },
    ],
    responses: {
      200: { description: "the aggregate (SPEC §4)", schema: aggregateSchema, headers: readHeaders },
      304: { description: "the aggregate's ETag matches If-None-Match", headers: readHeaders },
    },
    errors: errors("bad_request", "invalid_sku", "not_found", "invalid_record", "regional_unavailable", "overloaded", "not_cached"),
  },
  {
    method: "get",
    path: "/v1/skus",
    operationId: "getSkus",
    summary: `Several SKUs' aggregates at once (at most ${MAX_IDS})`,
    description: "Each SKU as GET /v1/skus/{sku} answers it; those without an aggregate are in `failed` with a code.",
    tags: ["reads"],
    params: [{ name: "ids", in: "query", schema: z.string(), description: `comma-separated SKU ids, at most ${MAX_IDS} (repeats count once)`, required: true }, region, onlyIfCached],
    responses: { 200: { description: "the aggregates found and the SKUs failed", schema: multiGetAnswerSchema, headers: { "Cache-Control": noStore } } },
    errors: errors("bad_request", "payload_too_large", "overloaded"),
  },
  {
    method: "post",
    path: "/v1/prewarm",
    operationId: "prewarm",
    summary: "Compute and cache a batch of SKUs",
    description: "One edge Redis round trip for the batch's records, the region for what the edge lacks, one Wasm call, every aggregate written. A bad SKU fails alone, in `failed`. Idempotent.",
    tags: ["writes"],
    security: "prewarmToken",
    params: [token("prewarm")],
    body: { schema: prewarmRequestSchema, contentTypes: bodyTypes, description: "JSON or MessagePack, at most 256 KiB" },
    responses: { 200: { description: "what was warmed, from where, and what failed by code", schema: prewarmAnswerSchema, headers: { "Cache-Control": noStore } } },
    errors: errors("bad_request", "unauthorized", "payload_too_large", "unsupported_media_type", "store_unavailable", "overloaded"),
  },
  {
    method: "post",
    path: "/v1/purge",
    operationId: "purge",
    summary: "Purge aggregates by SKU and/or tag, hard or soft",
    description: "In one region, or every region the node holds when none is named. Soft: kept STALE until one recomputation replaces it.",
    tags: ["writes"],
    security: "prewarmToken",
    params: [token("purge")],
    body: { schema: purgeRequestSchema, contentTypes: bodyTypes, description: "JSON or MessagePack, at most 256 KiB" },
    responses: { 200: { description: "how many aggregates were purged", schema: purgeAnswerSchema, headers: { "Cache-Control": noStore } } },
    errors: errors("bad_request", "invalid_sku", "unauthorized", "payload_too_large", "unsupported_media_type", "not_implemented", "store_unavailable", "overloaded"),
  },
  {
    method: "get",
    path: "/v1/hot",
    operationId: "hot",
    summary: "The node's most-read SKUs over a recent window",
    tags: ["writes"],
    security: "prewarmToken",
    params: [token("hot"), { name: "top", in: "query", schema: z.string().check(z.regex(/^\d+$/)), description: `how many, 1..${CAPACITY} (default 100)` }, region],
    responses: {
      200: {
        description: "most read first",
        schema: hotAnswerSchema,
        headers: { "Cache-Control": noStore, "X-Hot-Scope": { schema: z.enum(["node", "isolate"]), description: "`node`: every process's reads; `isolate`: the edge Redis could not be read, this process's own", required: true } },
      },
    },
    errors: errors("bad_request", "unauthorized", "overloaded"),
  },
  {
    method: "get",
    path: "/healthz",
    operationId: "healthz",
    summary: "Can this node answer?",
    tags: ["operations"],
    responses: {
      200: { description: "edge Redis and Wasm ok", schema: healthAnswerSchema, headers: { "Cache-Control": noStore } },
      503: { description: "degraded: the edge Redis or the Wasm is not ok", schema: healthAnswerSchema, headers: { "Cache-Control": noStore } },
    },
    errors: errors(),
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus text: the node's metrics (SPEC §5.2)",
    tags: ["operations"],
    responses: { 200: { description: "Prometheus text format 0.0.4", schema: z.string(), contentType: "text/plain" } },
    errors: errors(),
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This document",
    tags: ["operations"],
    responses: { 200: { description: "the OpenAPI 3.1 document of the node's API", schema: z.record(z.string(), z.unknown()) } },
    errors: {},
  },
];

export function edgeDocument(): JsonSchema {
  return buildDocument({
    title: "edge prewarm: edge node",
    version,
    description:
      "The edge node's HTTP API: reads of stock and price aggregates, and the write routes (prewarm, purge, hot) behind the node's PREWARM_TOKEN (closed when it has none). Errors are `{\"error\": {\"code\", \"message\"}}`; per-SKU failures of a batch are data (`failed`).",
    security: { prewarmToken: "the node's PREWARM_TOKEN" },
    operations: EDGE_OPERATIONS,
    components: {
      Aggregate: { schema: aggregateSchema, io: "output" },
      PrewarmRequest: { schema: prewarmRequestSchema, io: "input" },
      PrewarmAnswer: { schema: prewarmAnswerSchema, io: "output" },
      PurgeRequest: { schema: purgeRequestSchema, io: "input" },
      PurgeAnswer: { schema: purgeAnswerSchema, io: "output" },
      MultiGetAnswer: { schema: multiGetAnswerSchema, io: "output" },
      HotAnswer: { schema: hotAnswerSchema, io: "output" },
      Health: { schema: healthAnswerSchema, io: "output" },
    },
  });
}

/**
 * A Cloudflare deployment serves from many data centres, and the Cache API
 * keeps what a data centre wrote in that data centre. Here two (or three)
 * data centres run in workerd: each its own Cache API cache (CACHE_NAME) and
 * its own isolate state (hot cache, sync), all sharing one Workers KV
 * namespace (AGGREGATES_KV, the global tier) and the edge Redis, as a
 * deployment does. LOCAL_COPY_TTL_SECONDS is 1 so that the bound on a purge
 * made elsewhere (KV's propagation + the local copy's time) is seconds.
 * KV here is consistent at once; a location that has not yet seen a write is
 * simulated by putting back what it would still read.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import worker from "../../worker/index";
import { priceRecord, sleep, stockRecord, uniqueSku } from "./fixtures";
import { redisGetCalls, seed } from "./redis";
import { checked } from "./openapi-answers"; // the answers checked against the node's OpenAPI document, as SELF.fetch's are

const kv = (env as unknown as { TEST_GLOBAL_KV: KVNamespace }).TEST_GLOBAL_KV;
const TOKEN = inject("prewarmToken");
const run = Math.random().toString(36).slice(2, 8);
/** LOCAL_COPY_TTL_SECONDS of these data centres, and a little more. */
const LOCAL_MS = 1_000;
const PAST_LOCAL_MS = LOCAL_MS + 300;

interface DataCentre {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  get(sku: string, headers?: Record<string, string>): Promise<Response>;
  prewarm(body: unknown): Promise<Response>;
  purge(body: unknown): Promise<Response>;
}

/** A data centre of the deployment: the worker with its own Cache API cache and isolate state; `kvBinding` null = no global tier. */
function dataCentre(name: string, kvBinding: KVNamespace | null = kv): DataCentre {
  const dcEnv = { ...env, CACHE_NAME: `${name}-${run}`, LOCAL_COPY_TTL_SECONDS: String(LOCAL_MS / 1000), ...(kvBinding ? { AGGREGATES_KV: kvBinding } : {}) } as Env;
  const fetchIn = async (path: string, init?: RequestInit): Promise<Response> => {
    const ctx = createExecutionContext();
    const res = checked(init?.method ?? "GET", `https://edge.test${path}`, await worker.fetch(new Request(`https://edge.test${path}`, init) as Parameters<typeof worker.fetch>[0], dcEnv, ctx));
    const body = await res.arrayBuffer();
    // Its background work (a copy put in the Cache API, a recomputation) is done before the next request.
    await waitOnExecutionContext(ctx);
    return new Response(body, { status: res.status, headers: res.headers });
  };
  const post = (path: string, body: unknown): Promise<Response> =>
    fetchIn(path, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
  return {
    fetch: fetchIn,
    get: (sku, headers = {}) => fetchIn(`/v1/skus/${sku}`, { headers }),
    prewarm: (body) => post("/v1/prewarm", body),
    purge: (body) => post("/v1/purge", body),
  };
}

async function seededSku(label: string): Promise<string> {
  const sku = uniqueSku(label);
  await seed(sku, stockRecord(sku, 40), priceRecord(sku, 3_000));
  return sku;
}

/** Where KV keeps a SKU's aggregate (`worker/cache/kv-tier.ts`, the edge Redis's key layout). */
const entryKey = (sku: string): string => `sku:${sku}:agg:cn-east`;
/** Cloudflare's documented bound on a KV write reaching every location. */
const GLOBAL_PROPAGATION_MS = 60_000;

describe("a prewarm on Cloudflare", () => {
  it("through one data centre is a HIT in another, and its answer says when every data centre sees it", async () => {
    const a = dataCentre("warm-a");
    const b = dataCentre("warm-b");
    const sku = await seededSku("dc");
    const before = Date.now();
    const res = await a.prewarm({ skus: [sku] });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { warmed: number; scope: string; globalAt: number };
    expect(answer).toMatchObject({ warmed: 1, scope: "global" });
    expect(answer.globalAt).toBeGreaterThanOrEqual(before + GLOBAL_PROPAGATION_MS);
    expect(answer.globalAt).toBeLessThanOrEqual(Date.now() + GLOBAL_PROPAGATION_MS);

    const gets = await redisGetCalls();
    const read = await b.get(sku);
    expect(read.status).toBe(200);
    expect(read.headers.get("X-Cache")).toBe("HIT");
    expect(await read.json()).toMatchObject({ sku, price: { amount: 3_000 }, stock: { available: 40 } });
    // Found in KV: no record was read for it.
    expect(await redisGetCalls()).toBe(gets);

    // A look (prewarm verify) through the other data centre says the copy is global, and from when.
    const look = await b.fetch(`/v1/skus?ids=${sku}`, { headers: { "Cache-Control": "only-if-cached" } });
    expect(await look.json()).toMatchObject({ scope: "global", globalAt: { [sku]: answer.globalAt } });
  });

  it("without AGGREGATES_KV reaches its own data centre only, and the answer and /healthz say so", async () => {
    const a = dataCentre("local-a", null);
    const b = dataCentre("local-b", null);
    const sku = await seededSku("dc-local");
    const answer = (await (await a.prewarm({ skus: [sku] })).json()) as Record<string, unknown>;
    expect(answer).toMatchObject({ warmed: 1, scope: "data-centre" });
    expect(answer).not.toHaveProperty("globalAt");
    expect((await a.get(sku)).headers.get("X-Cache")).toBe("HIT");
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("MISS");
    expect(await (await b.fetch("/healthz")).json()).toMatchObject({ store: "cache-api", scope: "data-centre" });
    expect(await (await dataCentre("health-kv").fetch("/healthz")).json()).toMatchObject({ store: "cache-api", scope: "global", propagationMs: GLOBAL_PROPAGATION_MS });
  });
});

describe("a purge on Cloudflare", () => {
  it("through one data centre is not served as HIT by another once KV has propagated it and the local copy's time is up", async () => {
    const a = dataCentre("purge-a");
    const b = dataCentre("purge-b");
    const sku = await seededSku("dc-purge");
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("HIT"); // b now holds copies: its Cache API and its memory
    const warmed = await kv.get(entryKey(sku));
    expect(warmed).not.toBeNull();

    const purged = await a.purge({ skus: [sku] });
    expect(purged.status).toBe(200);
    expect(await purged.json()).toMatchObject({ purged: 1, soft: false });

    // b's KV location has not seen the purge yet: it still reads the entry and no fence.
    const fence = `sku:_hard:sku:${sku}`;
    const fenceValue = await kv.get(fence);
    expect(Number(fenceValue)).toBeGreaterThan(0);
    await kv.delete(fence);
    await kv.put(entryKey(sku), warmed!);
    const stale = await b.get(sku);
    expect(stale.headers.get("X-Cache")).toBe("HIT"); // allowed: within the bound
    const { computedAt: old } = (await stale.json()) as { computedAt: number };

    // KV propagates the purge (the fence reaches b's location; the stale entry is still there). b is busy
    // meanwhile (in step with the edge Redis, so its memory is trusted): its copies still go at their time.
    await kv.put(fence, fenceValue!);
    const until = Date.now() + PAST_LOCAL_MS;
    const seen: string[] = [];
    while (Date.now() < until) {
      seen.push((await b.get(sku)).headers.get("X-Cache")!);
      await sleep(100);
    }
    const after = await b.get(sku);
    expect(after.status).toBe(200);
    expect(((await after.json()) as { computedAt: number }).computedAt).toBeGreaterThan(old);
    expect(seen).toContain("MISS");
  });

  it("that reaches a data centre only through KV (its edge Redis change log missed it) ends the prewarming data centre's own memory copy at its time too", async () => {
    const a = dataCentre("held-a");
    const sku = await seededSku("dc-held");
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    expect((await a.get(sku)).headers.get("X-Cache")).toBe("HIT"); // from the prewarming isolate's memory
    // A purge whose fence reached KV only (as when the purging data centre could not write the edge Redis).
    await kv.put(`sku:_hard:sku:${sku}`, String(Date.now()), { expirationTtl: 600 });
    // Busy meanwhile (in step with the edge Redis, so its memory is trusted): the copy still goes at its time.
    const until = Date.now() + PAST_LOCAL_MS;
    const seen: string[] = [];
    while (Date.now() < until) {
      seen.push((await a.get(sku)).headers.get("X-Cache")!);
      await sleep(100);
    }
    expect(seen).toContain("MISS");
  });

  it("is looked at (only-if-cached) in another data centre without being stored there: a look stores nothing", async () => {
    const a = dataCentre("look-a");
    const b = dataCentre("look-b");
    const sku = await seededSku("dc-look");
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    const look = await b.get(sku, { "Cache-Control": "only-if-cached" });
    expect(look.status).toBe(200);
    const bCache = await caches.open(`look-b-${run}`);
    expect(await bCache.match(`https://edge-prewarm.internal/v1/skus/${sku}?region=cn-east`)).toBeUndefined();
    // A read does keep a copy in the data centre's Cache API.
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("HIT");
    expect(await bCache.match(`https://edge-prewarm.internal/v1/skus/${sku}?region=cn-east`)).toBeDefined();
  });

  it("by tag through one data centre is not served as HIT by another once the local copy's time is up", async () => {
    const a = dataCentre("tag-a");
    const b = dataCentre("tag-b");
    const sku = await seededSku("dc-tag");
    const label = `label:${sku}`;
    expect((await a.prewarm({ skus: [sku], tags: [label] })).status).toBe(200);
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("HIT");
    const purged = await a.purge({ tags: [label] });
    expect(purged.status).toBe(200);
    expect(await purged.json()).toMatchObject({ soft: false });
    await sleep(PAST_LOCAL_MS);
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("MISS");
  });

  it("soft through one data centre is STALE once in another, and its recomputation replaces it in KV for every data centre", async () => {
    const a = dataCentre("soft-a");
    const b = dataCentre("soft-b");
    const c = dataCentre("soft-c");
    const sku = await seededSku("dc-soft");
    const label = `label:${sku}`;
    expect((await a.prewarm({ skus: [sku], tags: [label] })).status).toBe(200);
    expect((await b.get(sku)).headers.get("X-Cache")).toBe("HIT");
    const soft = await a.purge({ tags: [label], soft: true });
    expect(soft.status).toBe(200);
    expect(await soft.json()).toMatchObject({ soft: true });
    await sleep(PAST_LOCAL_MS);
    const stale = await b.get(sku);
    expect(stale.headers.get("X-Cache")).toBe("STALE");
    expect(await stale.json()).toMatchObject({ sku, price: { amount: 3_000 } });
    // b's recomputation (behind that answer) went to KV: a third data centre finds a fresh copy.
    expect((await c.get(sku)).headers.get("X-Cache")).toBe("HIT");
  });

  it("that KV could not take in full is refused before anything is purged (413)", async () => {
    const a = dataCentre("big-a");
    const sku = await seededSku("dc-big");
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    const skus = [sku, ...Array.from({ length: 800 }, (_, i) => `big-${run}-${i}`)];
    const big = await a.purge({ skus });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large", message: expect.stringMatching(/at most 800/) } });
    expect(await kv.get(`sku:_hard:sku:${sku}`)).toBeNull();
    await sleep(PAST_LOCAL_MS);
    expect((await dataCentre("big-b").get(sku)).headers.get("X-Cache")).toBe("HIT");
  });
});

describe("the global tier", () => {
  it("treats a value that is not an entry as absent, and the next prewarm replaces it", async () => {
    const a = dataCentre("corrupt-a");
    const b = dataCentre("corrupt-b");
    const c = dataCentre("corrupt-c");
    const sku = await seededSku("dc-corrupt");
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    const good = (await kv.get(entryKey(sku)))!;
    await kv.put(entryKey(sku), "not an entry");
    const first = await b.get(sku);
    expect(first.status).toBe(200);
    expect(first.headers.get("X-Cache")).toBe("MISS");
    // Ours, but cut short: absent too.
    await kv.put(entryKey(sku), good.slice(0, good.length - 5));
    const cut = await c.get(sku);
    expect(cut.status).toBe(200);
    expect(cut.headers.get("X-Cache")).toBe("MISS");
    expect(await cut.json()).toMatchObject({ sku, price: { amount: 3_000 } });

    await sleep(1_100); // KV takes one write per second per key
    expect((await a.prewarm({ skus: [sku] })).status).toBe(200);
    expect((await dataCentre("corrupt-d").get(sku)).headers.get("X-Cache")).toBe("HIT");
  });

  it("down: the data centre works on its own Cache API, the prewarm answer says so, and a purge is not called a success", async () => {
    const fail = (): Promise<never> => Promise.reject(new Error("KV unavailable"));
    const down = { get: fail, getWithMetadata: fail, put: fail, delete: fail, list: fail } as unknown as KVNamespace;
    const a = dataCentre("down-a", down);
    const sku = await seededSku("dc-down");
    const res = await a.prewarm({ skus: [sku] });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({ warmed: 1, scope: "data-centre" });
    expect(answer).not.toHaveProperty("globalAt");
    expect((await a.get(sku)).headers.get("X-Cache")).toBe("HIT");
    await sleep(PAST_LOCAL_MS);
    const later = await a.get(sku);
    expect(later.status).toBe(200);
    expect(await later.json()).toMatchObject({ sku, price: { amount: 3_000 } });

    const purge = await a.purge({ skus: [sku] });
    expect(purge.status).toBe(503);
    expect(await purge.json()).toMatchObject({ error: { code: "store_unavailable", message: expect.stringMatching(/other data centres/) } });
  });
});

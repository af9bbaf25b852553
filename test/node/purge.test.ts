/**
 * Purge by tag and soft purge on the node as deployed (SPEC §9, issue 22):
 * 2 workerd processes, a real edge Redis, the reference aggregator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeRecord } from "../../records/encode";
import { REVALIDATION_CLAIM_MS, revalidationKey } from "../../worker/sources/edge-redis";
import { metricOf, postTo, readSku, startNodeStack, stockRecord, type NodeStack, type Read } from "./edge-node-client";

const TOKEN = "purge-test-token";
let stack: NodeStack;
let n = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const post = (url: string, route: string, body: unknown, token = TOKEN): Promise<Response> => postTo(url, route, body, token);

function proc(i: number): string {
  const p = stack.node.processes().get(i);
  if (!p) throw new Error(`no process ${i}:\n${stack.node.log()}`);
  return p.url;
}

/** A SKU on the edge at `base`, with the promotions named (each running for an hour, every region). */
async function seed(base: number, promos: string[] = []): Promise<string> {
  const sku = `purge-${process.pid}-${n++}`;
  const now = Date.now();
  const promotions = promos.map((id) => ({ id, kind: "amount", value: 1, startsAt: now - 1000, endsAt: now + 3_600_000 }));
  await stack.client.set(`sku:${sku}:stock`, stockRecord(sku));
  await stack.client.set(`sku:${sku}:price`, Buffer.from(encodeRecord({ sku, currency: "CNY", base, promotions, updatedAt: now })));
  return sku;
}

async function readBoth(sku: string, region?: string): Promise<Read[]> {
  return [await readSku(proc(1), sku, { region }), await readSku(proc(2), sku, { region })];
}

beforeAll(async () => {
  stack = await startNodeStack({ token: TOKEN, processes: 2 });
});

afterAll(async () => {
  await stack?.stop();
});

describe("POST /v1/purge by tag", () => {
  it("purges every aggregate with the tag, in every region, on every process within 1 s, and says how many", async () => {
    const tagged = [await seed(1_000, ["flash-a"]), await seed(2_000, ["flash-a", "other"])];
    const planned = await seed(3_000);
    const untouched = await seed(4_000, ["other"]);
    await sleep(100); // the change watch has seen the seeding while nothing was warm
    expect(await (await post(proc(1), "/v1/prewarm", { skus: [...tagged, untouched], ttl: 600 })).json()).toMatchObject({ warmed: 3 });
    expect(await (await post(proc(1), "/v1/prewarm", { skus: [planned], ttl: 600, tags: ["plan:spring"] })).json()).toMatchObject({ warmed: 1 });
    // another region's aggregate of a tagged SKU (computed by a read), and every key hot in both processes
    expect(await readSku(proc(2), tagged[0]!, { region: "cn-north" })).toMatchObject({ status: 200, cache: "MISS" });
    for (const sku of [...tagged, planned, untouched]) for (const r of await readBoth(sku)) expect(r.cache).toBe("HIT");
    expect((await readSku(proc(1), untouched)).amount).toBe(3_999);

    const res = await post(proc(2), "/v1/purge", { tags: ["promo:flash-a", "plan:spring"] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ purged: 4, soft: false });
    const purgedAt = Date.now();
    for (const sku of [...tagged, planned]) expect(await stack.client.exists(`sku:${sku}:agg:cn-east`)).toBe(0);
    expect(await stack.client.exists(`sku:${tagged[0]}:agg:cn-north`)).toBe(0);
    // From 1 s on, no process serves a purged aggregate from memory: what it answers was computed after the purge.
    await sleep(Math.max(0, purgedAt + 1000 - Date.now()));
    for (const sku of [...tagged, planned]) for (const r of await readBoth(sku)) expect(r.computedAt).toBeGreaterThanOrEqual(purgedAt - 50);
    expect((await readSku(proc(1), tagged[0]!, { region: "cn-north" })).computedAt).toBeGreaterThanOrEqual(purgedAt - 50);
    // The untagged one stays warm, as it was.
    for (const r of await readBoth(untouched)) expect(r).toMatchObject({ cache: "HIT", amount: 3_999 });
    expect((await readBoth(untouched))[0]!.computedAt).toBeLessThan(purgedAt);
  });

  it("purges in one region only when it is named", async () => {
    const sku = await seed(1_500, ["regional-only"]);
    await sleep(100);
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 600 });
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 600, region: "cn-north" });
    expect(await (await post(proc(1), "/v1/purge", { tags: ["promo:regional-only"], region: "cn-north" })).json()).toEqual({ purged: 1, soft: false, region: "cn-north" });
    expect(await stack.client.exists(`sku:${sku}:agg:cn-east`)).toBe(1);
    expect(await stack.client.exists(`sku:${sku}:agg:cn-north`)).toBe(0);
  });

  it("refuses bad input with a precise error and purges nothing", async () => {
    const sku = await seed(1_700, ["keep"]);
    await sleep(100);
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 600 });
    const cases: [unknown, number, string, RegExp][] = [
      [{}, 400, "bad_request", /skus, tags or both/],
      [{ skus: [], tags: [] }, 400, "bad_request", /skus, tags or both/],
      [{ tags: ["promo:keep", "nope:x"] }, 400, "bad_request", /tags\[1\].*kind:value/],
      [{ tags: ["promo:has space"] }, 400, "bad_request", /tags\[0\].*printable ASCII/],
      [{ tags: "promo:keep" }, 400, "bad_request", /tags must be an array/],
      [{ tags: Array.from({ length: 1001 }, (_, i) => `label:l${i}`) }, 413, "payload_too_large", /at most 1000 tags/],
      [{ skus: [sku, "bad id"] }, 400, "invalid_sku", /skus\[1\]/],
      [{ tags: ["promo:keep"], soft: "yes" }, 400, "bad_request", /soft must be true or false/],
    ];
    for (const [body, status, code, message] of cases) {
      const res = await post(proc(1), "/v1/purge", body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    expect((await post(proc(1), "/v1/purge", { tags: ["promo:keep"] }, "wrong")).status).toBe(401);
    expect(await stack.client.exists(`sku:${sku}:agg:cn-east`)).toBe(1);
    for (const r of await readBoth(sku)) expect(r.cache).toBe("HIT");
  });
});

describe("soft purge", () => {
  it("serves the old aggregate as STALE while one recomputation replaces it, never a miss to the records for every reader", async () => {
    const sku = await seed(5_000, ["soft-x"]);
    await sleep(100);
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 600 });
    const before = await readBoth(sku);
    for (const r of before) expect(r).toMatchObject({ cache: "HIT", amount: 4_999 });
    await sleep(1_500); // the node's totals are up to date
    const computations = await metricOf(stack.node.url, 'edge_aggregate_computations_total{trigger="read"}');
    const res = await post(proc(2), "/v1/purge", { tags: ["promo:soft-x"], soft: true });
    expect(await res.json()).toEqual({ purged: 1, soft: true });
    expect(await stack.client.exists(`sku:${sku}:agg:cn-east`)).toBe(1); // kept, stale
    await sleep(1_000); // past the 1 s bound: every process has dropped its copy from memory
    // A look (prewarm verify) sees it stale, and why, and recomputes nothing.
    const look = (await (await fetch(`${proc(1)}/v1/skus?ids=${sku}`, { headers: { "Cache-Control": "only-if-cached" } })).json()) as { stale: Record<string, string> };
    expect(look.stale).toEqual({ [sku]: "purged" });
    const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => readSku(proc(1 + (i % 2)), sku)));
    expect(reads.every((r) => r.status === 200 && r.amount === 4_999)).toBe(true);
    expect(reads.filter((r) => r.cache === "HIT" && r.computedAt === before[0]!.computedAt)).toEqual([]); // never the purged one as fresh
    expect(reads.filter((r) => r.cache === "STALE").length).toBeGreaterThan(0);
    expect(reads.filter((r) => r.cache === "MISS")).toEqual([]);
    await sleep(1_500);
    for (const r of await readBoth(sku)) expect(r.cache === "HIT" && r.computedAt! > before[0]!.computedAt!, JSON.stringify([r, before[0]])).toBe(true);
    const recomputed = (await metricOf(stack.node.url, 'edge_aggregate_computations_total{trigger="read"}')) - computations;
    expect(recomputed).toBe(1); // one for the node (the first read claims it)
  });

  it("is recomputed again after a second soft purge that comes while the first one's claim still runs", async () => {
    const sku = await seed(7_000, ["soft-twice"]);
    await sleep(100);
    await post(proc(1), "/v1/prewarm", { skus: [sku], ttl: 600 });
    const purgeSoft = async (): Promise<void> => {
      expect(await (await post(proc(2), "/v1/purge", { tags: ["promo:soft-twice"], soft: true })).json()).toEqual({ purged: 1, soft: true });
    };
    // Read on the purging process: it drops its own copies before answering (another may take up to 1 s).
    await purgeSoft();
    expect((await readSku(proc(2), sku)).cache).toBe("STALE"); // claims the recomputation (for 2 s)
    let first: Read | undefined;
    for (let i = 0; i < 20 && first?.cache !== "HIT"; i++) first = await readSku(proc(2), sku).then(async (r) => (r.cache === "HIT" ? r : (await sleep(50), r)));
    expect(first?.cache).toBe("HIT");
    await purgeSoft(); // well within the first claim's 2 s
    expect((await readSku(proc(2), sku)).cache).toBe("STALE");
    await sleep(400);
    const second = await readSku(proc(2), sku);
    expect(second.cache, "recomputed after the second purge, not left STALE until the first claim lapses").toBe("HIT");
    expect(second.computedAt!).toBeGreaterThan(first!.computedAt!);
  });

  it("is recomputed once for the node, however many reads of both processes find it stale at once (the first read claims it)", async () => {
    const skus = await Promise.all(Array.from({ length: 20 }, (_, i) => seed(6_000 + i, ["soft-node"])));
    await sleep(100);
    await post(proc(1), "/v1/prewarm", { skus, ttl: 600 });
    for (const sku of skus) for (const r of await readBoth(sku)) expect(r.cache).toBe("HIT");
    const res = await post(proc(2), "/v1/purge", { tags: ["promo:soft-node"], soft: true });
    expect(await res.json()).toEqual({ purged: 20, soft: true });
    await sleep(1_500); // the node's totals are up to date, and no process holds the purged entries in memory
    const computations = await metricOf(stack.node.url, 'edge_aggregate_computations_total{trigger="read"}');
    const records = await metricOf(stack.node.url, "edge_redis_record_reads_total");
    // Every key read 4 times by each process, all at once.
    const reads = await Promise.all(skus.flatMap((sku) => Array.from({ length: 8 }, (_, i) => readSku(proc(1 + (i % 2)), sku))));
    expect(reads.filter((r) => r.status !== 200 || r.cache === "MISS")).toEqual([]);
    await sleep(1_500);
    for (const sku of skus) for (const r of await readBoth(sku)) expect(r.cache, sku).toBe("HIT");
    expect((await metricOf(stack.node.url, 'edge_aggregate_computations_total{trigger="read"}')) - computations).toBe(skus.length);
    expect((await metricOf(stack.node.url, "edge_redis_record_reads_total")) - records).toBe(skus.length);
    // The claims lapse by themselves: nothing is left behind for long.
    expect(await stack.client.pttl(revalidationKey("sku:", skus[0]!, "cn-east"))).toBeLessThanOrEqual(REVALIDATION_CLAIM_MS);
  });
});

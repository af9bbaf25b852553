/**
 * SPEC §9's rules version on a self-hosted node, and a rollout of new rules
 * (SIGHUP: a rolling restart of the workerd processes onto the bundle as it
 * is now), on a real 2-process node under read load.
 */
import autocannon from "autocannon";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../edge-node/bundle";
import { BUNDLE_DIR, ROOT } from "../../edge-node/workerd-config";
import { postTo, priceRecord, readSku, startNodeStack, stockRecord, type NodeStack } from "./edge-node-client";

const TOKEN = "rules-test-token";
const sha12 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex").slice(0, 12);

/** An unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** The module with a custom section appended: other bytes (another rules version), the same behaviour. */
function withCustomSection(wasm: Uint8Array, note: string): Uint8Array {
  const name = Buffer.from("rollout-test");
  const payload = Buffer.from(note);
  const body = [...leb(name.length), ...name, ...payload];
  return Buffer.concat([wasm, Buffer.from([0, ...leb(body.length), ...body])]);
}

/** The bundle's go-stock module file. */
function moduleOf(dir: string): string {
  const f = readdirSync(dir).find((x) => x.endsWith("go-stock.wasm"));
  if (!f) throw new Error(`no go-stock module in ${dir}`);
  return path.join(dir, f);
}

async function rulesOf(url: string): Promise<string | undefined> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { rules?: string }).rules;
}

let stack: NodeStack;
let bundle: string;
let scratch: string;
beforeAll(async () => {
  // The node runs a bundle of its own (EDGE_NODE_BUNDLE_DIR), so that the test can replace its module.
  buildBundle(path.join(ROOT, "wrangler.toml"), BUNDLE_DIR);
  scratch = mkdtempSync(path.join(tmpdir(), "rules-rollout-"));
  bundle = path.join(scratch, "bundle");
  cpSync(BUNDLE_DIR, bundle, { recursive: true });
  stack = await startNodeStack({ token: TOKEN, processes: 2, bundleDir: bundle });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the rules version of a node", () => {
  const built = (): string => sha12(readFileSync(path.join(ROOT, "build/go-stock.wasm")));

  it("is written beside the module by the build: the first 12 hex digits of the SHA-256 of build/go-stock.wasm", () => {
    expect(readFileSync(path.join(ROOT, "build/go-stock-rules-version.txt"), "utf8").trim()).toBe(built());
  });

  it("is shown by every process's /healthz and carried by the prewarm answer", async () => {
    const { node, client } = stack;
    for (const p of node.processes().values()) expect(await rulesOf(p.url)).toBe(built());
    const sku = `rules-${process.pid}-a`;
    await client.set(`sku:${sku}:stock`, stockRecord(sku));
    await client.set(`sku:${sku}:price`, priceRecord(sku, 1_000));
    const res = await postTo(node.url, "/v1/prewarm", { skus: [sku] }, TOKEN);
    expect(await res.json()).toMatchObject({ warmed: 1, rules: built() });
  });
});

describe("SIGHUP", () => {
  it("swaps in a replaced module one process at a time under read load: no request fails, and every process then shows the new rules", async () => {
    const { node, client } = stack;
    const sku = `rules-${process.pid}-b`;
    await client.set(`sku:${sku}:stock`, stockRecord(sku));
    await client.set(`sku:${sku}:price`, priceRecord(sku, 2_000));
    expect((await readSku(node.url, sku)).amount).toBe(2_000);
    const before = new Map([...node.processes()].map(([i, p]) => [i, p.pid]));
    const old = await rulesOf(node.url);

    // A new module file, put in place whole (as a rebuild does).
    const file = moduleOf(bundle);
    const replaced = withCustomSection(readFileSync(file), `${Date.now()}`);
    writeFileSync(`${file}.new`, replaced);
    renameSync(`${file}.new`, file);
    const next = sha12(replaced);
    expect(next).not.toBe(old);

    const load = autocannon({ url: `${node.url}/v1/skus/${sku}`, connections: 4, duration: 6 });
    await new Promise((r) => setTimeout(r, 1000));
    const rolled = node.log().length;
    node.process.kill("SIGHUP");
    const result = await load;
    const log = node.log().slice(rolled);
    expect(log, node.log()).toContain(`rolling restart done: 2 processes run rules ${next}`);
    // One at a time: process 1's new process answered before process 2 was restarted.
    expect(log.indexOf("process 1 (pid")).toBeLessThan(log.indexOf("process 2 (pid"));

    expect(result.errors + result.timeouts + result.non2xx).toBe(0);
    expect(result["2xx"]).toBeGreaterThan(500);
    const after = node.processes();
    for (const [i, p] of after) {
      expect(p.pid).not.toBe(before.get(i));
      expect(await rulesOf(p.url)).toBe(next);
    }
    expect(await rulesOf(node.url)).toBe(next);
    expect((await readSku(node.url, sku)).amount).toBe(2_000);
  }, 60_000);
});

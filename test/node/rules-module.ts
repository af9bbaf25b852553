/**
 * The go-stock module as the rollout tests handle it: a copy with other bytes
 * but the same behaviour (another rules version), the module file of a
 * bundle, and the rules version a node shows.
 */
import { readdirSync } from "node:fs";
import path from "node:path";

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

/** The module with a custom section (`name`, holding `note`) appended: other bytes (another rules version), the same behaviour. */
export function withCustomSection(wasm: Uint8Array, note: string, name = "rollout-test"): Uint8Array {
  const n = Buffer.from(name);
  const body = [...leb(n.length), ...n, ...Buffer.from(note)];
  return Buffer.concat([wasm, Buffer.from([0, ...leb(body.length), ...body])]);
}

/** The bundle's go-stock module file. */
export function moduleOf(dir: string): string {
  const f = readdirSync(dir).find((x) => x.endsWith("go-stock.wasm"));
  if (!f) throw new Error(`no go-stock module in ${dir}`);
  return path.join(dir, f);
}

/** The rules version a node (or one of its processes) shows in /healthz. */
export async function rulesOf(url: string): Promise<string | undefined> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { rules?: string }).rules;
}

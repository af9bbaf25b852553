/**
 * The `prewarm` command as docs/operations.md has ops run it: `npx prewarm …` in the
 * checkout (package.json's bin, bin/prewarm.mjs), run to its end or started
 * to be watched.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");

export interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Runs `npx prewarm <args>` to its end (no shell): its stdout, stderr and exit code. */
export function prewarm(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile("npx", ["prewarm", ...args], { cwd: o.cwd ?? ROOT, env: o.env ?? process.env, timeout: o.timeoutMs ?? 60_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
    });
  });
}

/** Starts `prewarm <args>` as one process (node with the bin, so a kill reaches it); `done` resolves at its exit. */
export function startPrewarm(args: string[]): { child: ChildProcess; done: Promise<Ran>; output(): string } {
  const child = spawn(process.execPath, [path.join(ROOT, "bin/prewarm.mjs"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const done = new Promise<Ran>((resolve) => child.once("exit", (code) => resolve({ code: code ?? -1, out, err })));
  return { child, done, output: () => out + err };
}

/**
 * `npm run node:watch`, for development: a node (`main.ts`, same variables)
 * that serves with new rules as soon as a Go source of them changes. It
 * watches the go-stock sources, rebuilds the module with the Go toolchain
 * (its build cache makes an unchanged or one-package rebuild quick), puts it
 * in the node's bundle in place of the old one (written whole, then renamed)
 * and sends the node SIGHUP: a rolling restart onto the new rules, one
 * process at a time (SPEC §9's rules version changes with the bytes). Each
 * round logs how long the build and the roll took.
 *
 * GO_STOCK_DIR: the Go module to watch and build. @default go-stock/
 */
import { execFile, spawn } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, renameSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { rulesVersionOf } from "./bundle";
import { bundleDir, ROOT } from "./workerd-config";

const run = promisify(execFile);
const goDir = path.resolve(process.env["GO_STOCK_DIR"] || path.join(ROOT, "go-stock"));
/** Changes are collected this long before a rebuild (an editor writes a file in several steps). */
const SETTLE_MS = 30;

const node = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "edge-node/main.ts")], { stdio: "inherit", env: process.env });
node.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => node.kill(signal));

let timer: NodeJS.Timeout | null = null;
let building = false;
let again = false;

async function rebuild(): Promise<void> {
  if (building) {
    again = true;
    return;
  }
  building = true;
  const started = performance.now();
  try {
    const out = path.join(tmpdir(), `go-stock-watch-${process.pid}.wasm`);
    await run("bash", [path.join(goDir, "build.sh"), out], { cwd: goDir });
    const built = performance.now();
    const dir = bundleDir();
    const module = readdirSync(dir).find((f) => f.endsWith("go-stock.wasm"));
    if (!module) throw new Error(`${dir} holds no go-stock module`);
    const target = path.join(dir, module);
    copyFileSync(out, `${target}.new`);
    renameSync(`${target}.new`, target);
    const rules = rulesVersionOf(readFileSync(target));
    node.kill("SIGHUP");
    console.log(`node:watch: rules ${rules} built in ${Math.round(built - started)} ms; rolling the node onto them (its log says when done)`);
  } catch (e) {
    console.error(`node:watch: the rules did not build, the node keeps its own: ${(e as Error).message}`);
  } finally {
    building = false;
    if (again) {
      again = false;
      void rebuild();
    }
  }
}

watch(goDir, { recursive: true }, (_event, file) => {
  if (!file || !/\.(go|mod|sum|pgo)$/.test(file)) return;
  if (timer) clearTimeout(timer);
  timer = setTimeout(() => void rebuild(), SETTLE_MS);
});
console.log(`node:watch: rebuilding the rules when a Go source under ${path.relative(ROOT, goDir) || "."} changes`);

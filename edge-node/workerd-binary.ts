/**
 * The workerd binary a node runs: EDGE_NODE_WORKERD (a release's own, set by
 * its launcher), else the one of the project's pinned `workerd` package.
 */
import { createRequire } from "node:module";
import path from "node:path";

export function workerdBinary(env: NodeJS.ProcessEnv = process.env): string {
  const given = env["EDGE_NODE_WORKERD"];
  if (given) return given;
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve("workerd/package.json")), "bin/workerd");
}

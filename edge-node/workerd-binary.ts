/** The workerd binary of the project's pinned `workerd` package. */
import { createRequire } from "node:module";
import path from "node:path";

export function workerdBinary(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve("workerd/package.json")), "bin/workerd");
}

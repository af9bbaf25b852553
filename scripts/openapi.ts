/**
 * `npm run openapi`: writes the OpenAPI 3.1 documents of the edge node and
 * the ops API, generated from the schemas their code validates with, to
 * docs/openapi/ (`--check`: fails, writing nothing, when a written one
 * differs from what the code generates). The node serves the written file
 * (it is in its bundle); the ops API generates it when asked.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { edgeDocument } from "../worker/http/openapi";
import { opsDocument } from "../prewarm-scheduler/ops/openapi";

export const OPENAPI_DIR = path.resolve(import.meta.dirname, "../docs/openapi");

/** Each document's file name and text (two-space JSON, a final newline). */
export function openapiFiles(): { file: string; text: string }[] {
  return [
    { file: "edge-node.json", text: `${JSON.stringify(edgeDocument(), null, 2)}\n` },
    { file: "ops-api.json", text: `${JSON.stringify(opsDocument(), null, 2)}\n` },
  ];
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const check = process.argv.includes("--check");
  let stale = 0;
  mkdirSync(OPENAPI_DIR, { recursive: true });
  for (const { file, text } of openapiFiles()) {
    const target = path.join(OPENAPI_DIR, file);
    let old = "";
    try {
      old = readFileSync(target, "utf8");
    } catch {
      // not written yet
    }
    if (old === text) continue;
    if (check) {
      stale++;
      console.error(`docs/openapi/${file} is not what the code generates: run npm run openapi`);
    } else {
      writeFileSync(target, text);
      console.log(`wrote docs/openapi/${file}`);
    }
  }
  process.exit(stale > 0 ? 1 : 0);
}

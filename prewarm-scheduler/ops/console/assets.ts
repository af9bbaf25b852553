/**
 * The console's static files, read once when the console starts: htmx from
 * the installed `htmx.org` package (pinned in package.json; nothing is
 * fetched from the internet at run time), and the console's own stylesheet
 * and script beside this file.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

const FILES: Record<string, { file: () => string; type: string }> = {
  "htmx.min.js": { file: () => require.resolve("htmx.org/dist/htmx.min.js"), type: "text/javascript; charset=utf-8" },
  "console.css": { file: () => path.join(import.meta.dirname, "assets", "console.css"), type: "text/css; charset=utf-8" },
  "console.js": { file: () => path.join(import.meta.dirname, "assets", "console.js"), type: "text/javascript; charset=utf-8" },
};

let loaded: Map<string, { body: string; type: string }> | null = null;

/** A console asset by its file name, or null. */
export function consoleAsset(name: string): { body: string; type: string } | null {
  loaded ??= new Map(Object.entries(FILES).map(([n, f]) => [n, { body: readFileSync(f.file(), "utf8"), type: f.type }]));
  return loaded.get(name) ?? null;
}

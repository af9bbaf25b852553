#!/usr/bin/env node
/**
 * The `prewarm` command (package.json `bin`: `npx prewarm …` in a checkout,
 * or on PATH once the package is installed): registers tsx's loader in this
 * process and runs the CLI's TypeScript source, so what the command prints
 * is the CLI's own output (no npm banner before a `--json` answer) and its
 * exit code is the CLI's.
 */
import { register } from "tsx/esm/api";

register();
await import(new URL("../prewarm-scheduler/cli/cli.ts", import.meta.url).href);

/**
 * What one isolate keeps across requests: the Wasm rules instance. Nothing
 * with a socket lives here (workerd ties sockets to the request that opened them).
 */
import goStock from "../build/go-stock.wasm";
import type { Deps } from "./aggregates";
import { EdgeCache } from "./cache";
import { configOf } from "./config";
import { RulesHost } from "./rules-host";

export const rulesHost = new RulesHost(goStock);

export function depsFor(env: Env): Deps {
  return { cfg: configOf(env), rules: rulesHost, cache: EdgeCache.default() };
}

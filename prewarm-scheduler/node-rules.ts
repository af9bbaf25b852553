/**
 * Which rules each node of the fleet runs (SPEC §9 `rules`), for `prewarm
 * nodes list`, `GET /v1/nodes` and `prewarm verify`: a node that announces
 * itself says it in every heartbeat (its registry entry's `rules`); any
 * other (a config node, one added by hand, an older node) is asked for its
 * `/healthz`, without the fleet's token, within RULES_PROBE_TIMEOUT_MS.
 * `unknown` when it cannot say (unreachable, or older than SPEC §9). A node
 * whose URL the allow-list refuses is never contacted.
 */
import { RULES_VERSION_RE } from "../contract/prewarm";
import type { EdgeNodeConfig } from "./config";
import type { NodeState } from "./registry";

/** How long a node's /healthz may take to say its rules. */
export const RULES_PROBE_TIMEOUT_MS = 2000;

export const UNKNOWN_RULES = "unknown";

/** The rules version a node's /healthz shows, or `unknown`. */
export async function probeRules(url: string, timeoutMs = RULES_PROBE_TIMEOUT_MS): Promise<string> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
    const body = (await res.json()) as { rules?: unknown };
    return typeof body.rules === "string" && RULES_VERSION_RE.test(body.rules) ? body.rules : UNKNOWN_RULES;
  } catch {
    return UNKNOWN_RULES;
  }
}

export interface ListedNode {
  name: string;
  url: string;
  region: string;
  source: "config" | "announced" | "added";
  state: NodeState["state"];
  lastSeen: number | null;
  processes?: number;
  version?: string;
  /** SPEC §9, or `unknown`. */
  rules: string;
}

/** Every node, the config's then the registry's, each with its rules version. */
export async function listNodes(configNodes: readonly EdgeNodeConfig[], registered: readonly NodeState[]): Promise<ListedNode[]> {
  const fixed = configNodes.map(async (n): Promise<ListedNode> => ({ name: n.name, url: n.url, region: n.region, source: "config", state: "live", lastSeen: null, rules: await probeRules(n.url) }));
  const others = registered.map(async (e): Promise<ListedNode> => {
    const { name, url, region, source, state, lastSeen, processes, version } = e;
    const rules = e.rules ?? (state === "refused" ? UNKNOWN_RULES : await probeRules(url));
    return { name, url, region, source, state, lastSeen, ...(processes !== undefined ? { processes } : {}), ...(version !== undefined ? { version } : {}), rules };
  });
  return Promise.all([...fixed, ...others]);
}

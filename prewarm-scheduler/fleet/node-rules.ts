/**
 * Each node of the fleet as `prewarm nodes list`, `GET /v1/nodes` and
 * `prewarm verify` see it: whether it answers and which rules it runs (SPEC
 * §9 `rules`). A node that announces itself says its rules in every
 * heartbeat (its registry entry's `rules`), and its heartbeat is its state;
 * any other (a config node, one added by hand, an older node) is asked for
 * its `/healthz`, without the fleet's token, within HEALTH_PROBE_TIMEOUT_MS
 * (at most PROBES_IN_FLIGHT at once): `live` when it answers 200,
 * `degraded` when it answers otherwise (its /healthz says why), `unreachable`
 * when it does not answer; its rules `unknown` when it cannot say
 * (unreachable, or older than SPEC §9). A node whose URL the allow-list
 * refuses is never contacted.
 */
import pLimit from "p-limit";
import { readCapped } from "../../contract/http";
import { RULES_VERSION_RE } from "../../contract/prewarm";
import type { EdgeNodeConfig } from "../config/config";
import type { NodeState } from "./registry";

/** How long a node's /healthz may take to answer. */
export const HEALTH_PROBE_TIMEOUT_MS = 2000;
/** Nodes asked at once: a fleet of hundreds is listed in a few probe timeouts at worst. */
export const PROBES_IN_FLIGHT = 64;

export const UNKNOWN_RULES = "unknown";

export interface NodeHealth {
  /** 200: `live`; another status: `degraded`; no answer: `unreachable`. */
  state: "live" | "degraded" | "unreachable";
  /** Why not live, as the scheduler's failure codes say it: `node_unreachable`, `timeout`, `http_<status>`. */
  error?: string;
  /** SPEC §9, or `unknown`. */
  rules: string;
}

/** The most of a /healthz answer a probe reads. */
const HEALTH_BODY_MAX_BYTES = 16 * 1024;

/** Asks a node's /healthz whether it answers, and the rules version it shows. */
export async function probeHealth(url: string, timeoutMs = HEALTH_PROBE_TIMEOUT_MS): Promise<NodeHealth> {
  let res: Response;
  try {
    res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
  } catch (e) {
    return { state: "unreachable", error: (e as Error).name === "TimeoutError" ? "timeout" : "node_unreachable", rules: UNKNOWN_RULES };
  }
  let rules = UNKNOWN_RULES;
  try {
    // A node's /healthz is a few hundred bytes: a longer answer is not read past HEALTH_BODY_MAX_BYTES.
    // (Node's web streams are async iterable; its fetch types do not say so.)
    const bytes = res.body ? await readCapped(res.body as unknown as AsyncIterable<Uint8Array>, HEALTH_BODY_MAX_BYTES) : null;
    if (bytes === null) await res.body?.cancel();
    const body = JSON.parse(new TextDecoder().decode(bytes ?? new Uint8Array())) as { rules?: unknown };
    if (typeof body.rules === "string" && RULES_VERSION_RE.test(body.rules)) rules = body.rules;
  } catch {
    // Not JSON, or cut short: the node answered, but does not say its rules.
  }
  return res.status === 200 ? { state: "live", rules } : { state: "degraded", error: `http_${res.status}`, rules };
}

/** The rules version a node's /healthz shows, or `unknown`. */
export async function probeRules(url: string, timeoutMs = HEALTH_PROBE_TIMEOUT_MS): Promise<string> {
  return (await probeHealth(url, timeoutMs)).rules;
}

export interface ListedNode {
  name: string;
  url: string;
  region: string;
  source: "config" | "announced" | "added";
  /** An announcing node's heartbeat (`live`, `absent`), `refused` by the allow-list, or what its /healthz said. */
  state: NodeState["state"] | NodeHealth["state"];
  /** Why a probed node is not live (`node_unreachable`, `timeout`, `http_<status>`). */
  error?: string;
  lastSeen: number | null;
  processes?: number;
  version?: string;
  /** SPEC §9, or `unknown`. */
  rules: string;
}

/** Every node, the config's then the registry's, each with its state and rules version. */
export async function listNodes(configNodes: readonly EdgeNodeConfig[], registered: readonly NodeState[]): Promise<ListedNode[]> {
  const limit = pLimit(PROBES_IN_FLIGHT);
  const probe = (url: string): Promise<NodeHealth> => limit(() => probeHealth(url));
  const health = (h: NodeHealth): Pick<ListedNode, "state" | "error" | "rules"> => ({ state: h.state, ...(h.error !== undefined ? { error: h.error } : {}), rules: h.rules });
  const fixed = configNodes.map(async (n): Promise<ListedNode> => ({ name: n.name, url: n.url, region: n.region, source: "config", lastSeen: null, ...health(await probe(n.url)) }));
  const others = registered.map(async (e): Promise<ListedNode> => {
    const { name, url, region, source, state, lastSeen, processes, version } = e;
    const listed: ListedNode = { name, url, region, source, state, lastSeen, ...(processes !== undefined ? { processes } : {}), ...(version !== undefined ? { version } : {}), rules: e.rules ?? UNKNOWN_RULES };
    if (state === "refused") return listed;
    // Added by hand: no heartbeat, so its answer is its state. Announced: its heartbeat is; asked only for rules it did not announce.
    if (source === "added") return { ...listed, ...health(await probe(url)), ...(e.rules !== undefined ? { rules: e.rules } : {}) };
    return e.rules !== undefined ? listed : { ...listed, rules: (await probe(url)).rules };
  });
  return Promise.all([...fixed, ...others]);
}

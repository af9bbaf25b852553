/**
 * A self-hosted node announces itself to the scheduler's node registry
 * (`POST /v1/nodes/announce` on the ops API, with the registry token) when
 * NODE_ANNOUNCE_URL is set, and keeps announcing every ANNOUNCE_EVERY_MS: its
 * heartbeat. A node that stops (or whose announcements stop arriving) is
 * absent for the scheduler after its `nodeAbsentAfterMs`.
 */

/** How often the node announces itself. */
export const ANNOUNCE_EVERY_MS = 5000;

export interface Announcement {
  name: string;
  url: string;
  region: string;
  processes: number;
  version: string;
  /** The rules version it runs (SPEC §9); it changes with a rolling restart onto new rules. */
  rules?: string;
}

/** Starts announcing; returns the function that stops it. */
export function announce(o: { schedulerUrl: string; token: string; node: Announcement; log: (line: string) => void }): () => void {
  let last = "";
  const once = async (): Promise<void> => {
    let outcome: string;
    try {
      const res = await fetch(`${o.schedulerUrl.replace(/\/+$/, "")}/v1/nodes/announce`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${o.token}` },
        body: JSON.stringify(o.node),
        signal: AbortSignal.timeout(ANNOUNCE_EVERY_MS),
      });
      const body = await res.text();
      outcome = res.status === 200 ? "announced to the scheduler" : `the scheduler refused the announcement: ${res.status} ${body.slice(0, 300)}`;
    } catch (e) {
      outcome = `the scheduler could not be reached to announce this node: ${(e as Error).message}`;
    }
    if (outcome !== last) o.log(outcome); // once per change, not every heartbeat
    last = outcome;
  };
  void once();
  const timer = setInterval(() => void once(), ANNOUNCE_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}

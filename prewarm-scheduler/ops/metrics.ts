/**
 * The scheduler's own metrics, in Prometheus text format (prom-client), served
 * by the ops API at `GET /metrics`: the state of its queues, the runs still
 * open, the latest readiness of each campaign that checks itself, the fleet
 * (the node registry) and whether its Redis answers. Everything is read from the scheduler's Redis at scrape
 * time, so any scheduler process answers for all of them.
 */
import { Gauge, Registry } from "prom-client";
import type { Engine } from "../runs/engine";
import { listSchedules } from "../runs/schedules";

/** The job states counted per queue. */
const STATES = ["waiting", "active", "delayed", "failed", "completed", "prioritized"] as const;

export function schedulerMetrics(engine: Engine): Registry {
  const registry = new Registry();
  new Gauge({
    name: "prewarm_scheduler_redis_up",
    help: "1 when the scheduler's Redis answers a PING within redisTimeoutMs, else 0.",
    registers: [registry],
    async collect() {
      this.set((await engine.health()).ok ? 1 : 0);
    },
  });
  new Gauge({
    name: "prewarm_queue_jobs",
    help: "Jobs in the scheduler's queues, by queue (runs, batches) and state.",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of engine.queues()) {
        const counts = await q.getJobCounts(...STATES);
        for (const s of STATES) this.set({ queue: q.name, state: s }, counts[s] ?? 0);
      }
    },
  });
  new Gauge({
    name: "prewarm_runs_open",
    help: "Runs not finished yet (they are closed by their deadline at the latest).",
    registers: [registry],
    async collect() {
      this.set(await engine.store.openCount());
    },
  });
  new Gauge({
    name: "prewarm_readiness_ratio",
    help: "The share of a campaign's keys ready on a node at its latest check (verifyBefore), after its stragglers were re-warmed.",
    labelNames: ["plan", "node"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of await listSchedules(engine)) {
        const r = s.readiness?.after ?? s.readiness?.before;
        for (const n of r?.nodes ?? []) this.set({ plan: s.plan, node: n.name }, n.skus === 0 ? 1 : n.ready / n.skus);
      }
    },
  });
  new Gauge({
    name: "prewarm_nodes",
    help: "Edge nodes of the fleet, by source (config, announced, added) and state (live, absent).",
    labelNames: ["source", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      this.set({ source: "config", state: "live" }, engine.cfg.nodes.length);
      for (const n of await engine.registry.list()) this.inc({ source: n.source, state: n.state });
    },
  });
  new Gauge({
    name: "prewarm_node_last_seen_seconds",
    help: "Seconds since a registry node last announced itself.",
    labelNames: ["node"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const now = Date.now();
      for (const n of await engine.registry.list(now)) if (n.source === "announced") this.set({ node: n.name }, (now - n.lastSeen) / 1000);
    },
  });
  return registry;
}

/**
 * `prewarm`: the ops CLI of the scheduler (`npx prewarm …`: package.json's bin,
 * bin/prewarm.mjs; also `npm run prewarm -- …`, after npm's banner).
 *
 *   prewarm run <plan>          run a plan now: progress bar per node, per-node report;
 *                               exit 1 when failures pass the plan's failureThreshold
 *   prewarm status <run> [--watch]   a run's (or a purge's) progress and report; exit code as `prewarm run`'s,
 *                               5 while it runs; --watch refreshes (every second) until it ends
 *   prewarm validate <plan...>  offline (no Redis, no node): each plan's fields, cron, campaign times, and
 *                               the nodes and regions it targets when a config is found; exit 2 on any error
 *   prewarm check <plan>        dry run: each node's estimated time; refuses a campaign whose lead is too short
 *   prewarm hot <key>           collect the nodes' most-read SKUs into the sorted set <key> (for skus.hot)
 *   prewarm verify <plan>       is every planned key warm on every target node (warms nothing);
 *                               exit 1 when readiness is below the plan's verify.readiness
 *   prewarm schedule <plan>     register a cron or campaign plan (idempotent)
 *   prewarm unschedule <name>   remove a plan's schedule
 *   prewarm purge (--tag T ... | --sku S ...) [--soft] [--region R] [--nodes N,...]
 *                               purge the fleet; per-node report; exit 1 when a target node did not confirm
 *                               (it is sent the purge again until it does)
 *   prewarm list                schedules, recent runs and recent purges
 *   prewarm nodes list|add|remove   the fleet: the config's nodes and the live registry
 *   prewarm worker              process batches (run as many as you like, anywhere)
 *   prewarm serve               the ops HTTP API and job dashboard (workers included)
 *
 * The config file (edge nodes, Redis, token, batch size, concurrency, retries)
 * comes from --config, $PREWARM_CONFIG, or ./prewarm.config.yaml.
 * Exit codes: 0 done, 1 failures over the threshold, run failed or an error,
 * 2 bad input, 3 the scheduler's Redis did not answer within redisTimeoutMs,
 * 4 (`prewarm run`, `prewarm status`) the run left SKUs unsent: a newer run of the plan superseded them,
 * 5 (`prewarm status` without --watch) the run is still running.
 */
import { Command, Option } from "commander";
import { describeRedis, loadConfig, type SchedulerConfig } from "../config/config";
import { Engine, SchedulerRedisError } from "../runs/engine";
import { serveOps } from "../ops/ops-api";
import { loadPlan } from "../plans/plan";
import { watchRun } from "./progress";
import { formatReport, runExitCode, skusPerSecond } from "./report";
import { isInvalidFileError } from "../config/schema-errors";
import { listSchedules, schedulePlan, unschedulePlan } from "../runs/schedules";
import { resolveSkus } from "../plans/sku-source";
import { formatVerify, verifyPlan } from "../fleet/verify";
import { listNodes } from "../fleet/node-rules";
import { RULES_VERSION_RE } from "../../contract/prewarm";
import { collectHotSkus } from "../fleet/hot-skus";
import { checkPlan, formatCheck } from "../runs/check";
import { MultiBar, Presets } from "cli-progress";
import { existsSync } from "node:fs";
import { formatValidation, validatePlans } from "../plans/validate";
import { version } from "../../package.json";
import { cliUser, describePurge, describeWho, formatPurge, isPurgeId, parsePurge } from "../fleet/purge";

interface Common {
  config?: string;
  json?: boolean;
}

function config(o: Common): SchedulerConfig {
  return loadConfig(o.config ?? process.env["PREWARM_CONFIG"] ?? "prewarm.config.yaml");
}

function out(o: Common, json: unknown, text: string): void {
  process.stdout.write(o.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

/** Runs a command with an engine once its Redis answers (bounded wait), closing it however the command ends. */
async function withEngine<T>(o: Common, fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = new Engine(config(o));
  try {
    await engine.connected();
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

function untilSignal(engine: Engine, what: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = (sig: string): void => {
      console.error(`${what}: ${sig}, finishing the batches in hand`);
      void engine.close().then(resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

const program = new Command("prewarm").description("edge prewarm scheduler: plans, fan-out to every edge node, schedules, reports").version(version, "-V, --version", "the package version");
const withCommon = (c: Command): Command =>
  c.option("-c, --config <file>", "scheduler config (YAML/JSON); default $PREWARM_CONFIG or ./prewarm.config.yaml").option("--json", "JSON output for scripts");

withCommon(program.command("run <plan>").description("run a plan now and report per node"))
  .option("--no-progress", "no progress bars")
  .option("--no-work", "only enqueue and watch; other `prewarm worker` processes do the batches")
  .option("--detach", "enqueue, print the run id, and return: a `prewarm worker` or `prewarm serve` process works it (warns when none is running)")
  .action(async (planFile: string, o: Common & { progress: boolean; work: boolean; detach?: boolean }) => {
    const plan = loadPlan(planFile);
    await withEngine(o, async (engine) => {
      if (o.work && !o.detach) {
        engine.startWorkers();
        await engine.waitUntilReady();
      }
      const runId = await engine.startRun(plan, "cli");
      if (o.detach) {
        // The run is only queued: a `prewarm worker` or `prewarm serve` on this Redis and prefix works it, or nobody does.
        const workers = await engine.batches.getWorkersCount();
        if (workers === 0) console.error(`prewarm run: no prewarm worker or serve process works this scheduler's queues (${describeRedis(engine.cfg.redis)}, prefix ${engine.cfg.prefix}): run ${runId} is queued until one starts (its deadline, ${plan.deadline / 1000} s, runs meanwhile)`);
        return out(o, { runId, workers }, runId);
      }
      if (!o.json) console.error(`run ${runId}: plan ${plan.name}`);
      const report = await watchRun(engine, runId, { bars: o.progress && !o.json });
      const rate = skusPerSecond(report);
      out(o, { ...report, skusPerSecond: rate }, formatReport(report) + (rate === null ? "" : `\n\n${Math.round(rate)} SKUs/s over all nodes`));
      process.exitCode = runExitCode(report.status);
    });
  });

withCommon(program.command("validate <plan...>").description("check plan files offline (no Redis, no node) as run and schedule would load them; with a config (-c, $PREWARM_CONFIG or ./prewarm.config.yaml if present), also the nodes and regions they target"))
  .action((planFiles: string[], o: Common) => {
    const file = o.config ?? process.env["PREWARM_CONFIG"] ?? (existsSync("prewarm.config.yaml") ? "prewarm.config.yaml" : undefined);
    const v = validatePlans(planFiles, file === undefined ? null : { file, config: loadConfig(file) });
    out(o, v, formatValidation(v));
    if (!v.ok) process.exitCode = 2;
  });

withCommon(program.command("check <plan>").description("dry run: resolve the SKUs, estimate each node's time from its recent runs, refuse a campaign whose lead is too short; sends nothing to the nodes")).action(async (planFile: string, o: Common) => {
  const plan = loadPlan(planFile);
  await withEngine(o, async (engine) => {
    const r = await checkPlan(await engine.withFleet(), engine.store, plan, await resolveSkus(plan.skus, engine.redis));
    out(o, r, formatCheck(r));
    if (!r.ok) process.exitCode = 1;
  });
});

withCommon(program.command("hot <key>").description("collect every node's most-read SKUs (GET /v1/hot) into the sorted set <key> of the scheduler's Redis, for plans' skus.hot"))
  .option("-n, --top <n>", "SKUs asked of each node (1..1000)", "1000")
  .action(async (key: string, o: Common & { top: string }) => {
    const top = Number(o.top);
    if (!Number.isInteger(top) || top < 1 || top > 1000) {
      console.error(`--top must be an integer in 1..1000, got ${JSON.stringify(o.top)}`);
      process.exit(2);
    }
    await withEngine(o, async (engine) => {
      const r = await collectHotSkus(await engine.withFleet(), engine.redis, key, top);
      out(o, r, [`${r.key}: ${r.skus} SKUs`, ...r.nodes.map((n) => `  ${n.name.padEnd(16)} ${n.error ? `not collected: ${n.error}` : `${n.skus} SKUs`}`)].join("\n"));
      if (r.skus === 0) process.exitCode = 1;
    });
  });

withCommon(program.command("verify <plan>").description("check that every planned key is cached and valid long enough on every target node, warming nothing"))
  .option("--no-progress", "no progress bars")
  .option("--rules <version>", "the rules version (SPEC §9, 12 hex digits) every target node must run; default the plan's verify.rules, else the version most target nodes run")
  .action(async (planFile: string, o: Common & { progress: boolean; rules?: string }) => {
    const plan = loadPlan(planFile);
    if (o.rules !== undefined && !RULES_VERSION_RE.test(o.rules)) {
      console.error(`prewarm: --rules must be a rules version: 12 lowercase hex digits (a node's /healthz rules), got ${JSON.stringify(o.rules)}`);
      process.exit(2);
    }
    await withEngine(o, async (engine) => {
      const skus = await resolveSkus(plan.skus, engine.redis);
      const multi = o.progress && !o.json && process.stderr.isTTY ? new MultiBar({ format: " {node} |{bar}| {percentage}% {value}/{total} keys checked", hideCursor: true }, Presets.shades_classic) : null;
      const bars = new Map<string, ReturnType<MultiBar["create"]>>();
      try {
        const report = await verifyPlan(await engine.withFleet(), plan, skus, {
          ...(o.rules !== undefined ? { rules: o.rules } : {}),
          onProgress: (node, checked) => {
            if (!multi) return;
            if (!bars.has(node)) bars.set(node, multi.create(skus.length, 0, { node: node.padEnd(12) }));
            bars.get(node)!.update(checked);
          },
        });
        multi?.stop();
        out(o, report, formatVerify(report));
        if (!report.met) process.exitCode = 1;
      } finally {
        multi?.stop();
      }
    });
  });

/** How often `prewarm status --watch` reads a run or a purge again. */
const WATCH_EVERY_MS = 1000;

withCommon(program.command("status <run>").description("a run's (or a purge's) progress and per-node report; exit 0 done, 1 failed (a purge: a node did not confirm), 4 superseded, 5 still running"))
  .option("-w, --watch", `refresh (every ${WATCH_EVERY_MS / 1000} s; progress bars on a terminal) until the run ends (a purge: until no node is pending), then exit with its code`)
  .action(async (runId: string, o: Common & { watch?: boolean }) => {
    await withEngine(o, async (engine) => {
      if (isPurgeId(runId)) {
        let p = await engine.purges.report(runId);
        if (!p) {
          console.error(`no purge ${runId}`);
          process.exitCode = 2;
          return;
        }
        while (o.watch && p.pending > 0) {
          await new Promise((r) => setTimeout(r, WATCH_EVERY_MS));
          const next = await engine.purges.report(runId);
          if (!next) {
            // Dropped by retention while watched: its last state is shown, and the watch ends.
            console.error(`purge ${runId} is no longer recorded`);
            break;
          }
          p = next;
        }
        out(o, p, formatPurge(p));
        process.exitCode = p.ok ? 0 : 1;
        return;
      }
      let r = await engine.store.report(runId);
      if (!r) {
        console.error(`no run ${runId}`);
        process.exitCode = 2;
        return;
      }
      if (o.watch && r.finishedAt === null) r = await watchRun(engine, runId, { bars: !o.json, pollMs: WATCH_EVERY_MS });
      out(o, r, formatReport(r));
      process.exitCode = runExitCode(r.status);
    });
  });

withCommon(program.command("schedule <plan>").description("register a cron or campaign plan (idempotent; re-registering replaces)")).action(async (planFile: string, o: Common) => {
  const plan = loadPlan(planFile);
  await withEngine(o, async (engine) => {
    const e = await schedulePlan(engine, plan);
    out(o, e, `scheduled ${e.plan} (${e.kind}${e.cron ? ` ${e.cron}` : `, ${e.fireTimes?.length} runs`}); next ${e.next ? new Date(e.next).toISOString() : "-"}`);
  });
});

withCommon(program.command("unschedule <name>").description("remove a plan's schedule")).action(async (name: string, o: Common) => {
  await withEngine(o, async (engine) => {
    const removed = await unschedulePlan(engine, name);
    out(o, { plan: name, removed }, removed ? `unscheduled ${name}` : `no schedule for ${name}`);
    if (!removed) process.exitCode = 2;
  });
});

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
withCommon(program.command("purge").description("purge SKUs or tags from every target node (config and registry) and report per node; exit 1 when a node did not confirm"))
  .option("--tag <tag>", "a tag kind:value (kind: sku, promo, wh, plan, campaign, label); repeat for more", collect)
  .option("--sku <sku>", "a SKU id; repeat for more", collect)
  .option("--soft", "mark the aggregates stale (served once as STALE while recomputed) instead of dropping them")
  .option("--region <region>", "only the nodes of this region, and only this region's aggregates on them")
  .option("--nodes <names>", "only these nodes (comma-separated)")
  .action(async (o: Common & { tag?: string[]; sku?: string[]; soft?: boolean; region?: string; nodes?: string }) => {
    // Checked before anything is sent (SPEC §9's grammar and limits): a clear error and exit 2.
    const p = parsePurge(
      {
        ...(o.sku ? { skus: o.sku } : {}),
        ...(o.tag ? { tags: o.tag } : {}),
        soft: o.soft === true,
        ...(o.region !== undefined ? { region: o.region } : {}),
        ...(o.nodes !== undefined ? { nodes: o.nodes.split(",").map((n) => n.trim()).filter((n) => n !== "") } : {}),
      },
      "prewarm purge",
    );
    await withEngine(o, async (engine) => {
      const r = await engine.purges.purge(p, cliUser());
      out(o, r, formatPurge(r));
      if (!r.ok) process.exitCode = 1;
    });
  });

withCommon(program.command("list").description("schedules, recent runs and recent purges"))
  .option("-n, --limit <n>", "runs (and purges) to show", "20")
  .action(async (o: Common & { limit: string }) => {
    await withEngine(o, async (engine) => {
      const schedules = await listSchedules(engine);
      const runs = (await Promise.all((await engine.store.list(Number(o.limit))).map((id) => engine.store.report(id)))).filter((r) => r !== null);
      const purges = (await Promise.all((await engine.purges.list(Number(o.limit))).map((id) => engine.purges.report(id)))).filter((r) => r !== null);
      const text = [
        "schedules:",
        ...(schedules.length === 0 ? ["  (none)"] : schedules.map((s) => `  ${s.plan.padEnd(24)} ${s.kind.padEnd(9)} ${s.cron ?? `${s.fireTimes?.length} runs`}  next ${s.next ? new Date(s.next).toISOString() : "-"}`)),
        "runs:",
        ...(runs.length === 0 ? ["  (none)"] : runs.map((r) => `  ${r.runId.padEnd(44)} ${r.status.padEnd(10)} ${r.warmed} warmed, ${r.failed} failed${r.superseded > 0 ? `, ${r.superseded} unsent` : ""}  ${new Date(r.createdAt).toISOString()}`)),
        "purges:",
        ...(purges.length === 0
          ? ["  (none)"]
          : purges.map((p) => `  ${p.purgeId.padEnd(44)} ${(p.ok ? "purged" : p.pending > 0 ? "pending" : "expired").padEnd(10)} ${p.confirmed}/${p.results.length} nodes, ${p.purged} purged: ${describePurge(p)}  by ${describeWho(p.by)}  ${new Date(p.createdAt).toISOString()}`)),
      ].join("\n");
      out(o, { schedules, runs: runs.map(({ nodes: _n, ...r }) => r), purges }, text);
    });
  });

const nodes = program.command("nodes").description("the fleet: the config's nodes and the registry (nodes that announce themselves, or added here)");
withCommon(nodes.command("list").description("every node, with its source, state and rules version: an announcing node's from its heartbeat, any other's from its /healthz (live, degraded, or unreachable when it does not answer)")).action(async (o: Common) => {
  await withEngine(o, async (engine) => {
    const all = await listNodes(engine.cfg.nodes, await engine.registry.list());
    const state = (n: (typeof all)[number]): string => (n.error !== undefined ? `${n.state} (${n.error})` : n.state);
    out(o, { nodes: all }, all.length === 0 ? "(no nodes)" : all.map((n) => `${n.name.padEnd(24)} ${n.region.padEnd(10)} ${n.source.padEnd(9)} ${state(n).padEnd(30)} rules ${n.rules.padEnd(12)} ${n.url}`).join("\n"));
  });
});
withCommon(nodes.command("add <name> <url> <region>").description("add a node to the registry (its URL must match the config's nodeUrlAllow)")).action(async (name: string, url: string, region: string, o: Common) => {
  await withEngine(o, async (engine) => {
    const e = await engine.registry.add({ name, url, region });
    out(o, e, `added ${e.name} (${e.region})`);
  });
});
withCommon(nodes.command("remove <name>").description("remove a node from the registry")).action(async (name: string, o: Common) => {
  await withEngine(o, async (engine) => {
    const removed = await engine.registry.remove(name);
    out(o, { name, removed }, removed ? `removed ${name}` : `no registry node ${name}`);
    if (!removed) process.exitCode = 2;
  });
});

withCommon(program.command("worker").description("process plan expansions and batches until SIGINT/SIGTERM")).action(async (o: Common) => {
  const engine = new Engine(config(o));
  engine.startWorkers();
  await engine.waitUntilReady();
  console.error(`prewarm worker: ${engine.cfg.nodes.length} nodes, ${engine.cfg.concurrency} batches in flight, at most ${engine.cfg.concurrencyPerNode} per node`);
  await untilSignal(engine, "prewarm worker");
});

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

withCommon(program.command("serve").description("the ops HTTP API and job dashboard, with workers"))
  .addOption(new Option("-p, --port <port>", "port").default("8790"))
  .option("--host <host>", "address to listen on", "127.0.0.1")
  .option("--no-work", "API only, no workers")
  .option("--no-auth", "serve without an opsToken (refused on any host but loopback)")
  .action(async (o: Common & { port: string; host: string; work: boolean; auth: boolean }) => {
    const cfg = config(o);
    // Closed by default: an open API and dashboard only when asked for, and only on this machine.
    if (cfg.opsToken === "" && o.auth) {
      console.error("prewarm serve: opsToken is not set in the config; the ops API will not start open (set opsToken, or pass --no-auth on a loopback host)");
      process.exit(2);
    }
    if (!o.auth && !isLoopback(o.host)) {
      console.error(`prewarm serve: --no-auth is refused for host ${o.host}: only a loopback host (127.0.0.1, ::1, localhost) may serve without a token`);
      process.exit(2);
    }
    const engine = new Engine(o.auth ? cfg : { ...cfg, opsToken: "" });
    if (o.work) engine.startWorkers();
    const server = await serveOps(engine, Number(o.port), o.host);
    console.error(`prewarm ops API on http://${o.host}:${o.port} (dashboard /admin/queues)`);
    await untilSignal(engine, "prewarm serve");
    server.close();
  });

program.parseAsync().catch((e: unknown) => {
  if (isInvalidFileError(e)) {
    console.error(e.message);
    process.exit(2);
  }
  if (e instanceof SchedulerRedisError) {
    console.error(`prewarm: ${e.message}`);
    process.exit(3);
  }
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

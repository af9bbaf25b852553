/**
 * The ops HTTP API: trigger a plan, see runs with their progress and
 * failures, manage schedules, and the BullMQ job dashboard (bull-board) at
 * /admin/queues. Bearer-authenticated when `opsToken` is set. The operator
 * console (console/) is served on the same origin, at `/`.
 */
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serve, type ServerType } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import { randomUUID } from "node:crypto";
import { Hono, type Context } from "hono";
import { bearerVerdict } from "../../contract/http";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { timeout } from "hono/timeout";
import { SchedulerRedisError, type Engine } from "../runs/engine";
import { within } from "../redis/within";
import { getConnInfo } from "@hono/node-server/conninfo";
import { parsePurge } from "../fleet/purge";
import { parsePlan } from "../plans/plan";
import { isInvalidFileError } from "../config/schema-errors";
import { listSchedules, schedulePlan, unschedulePlan } from "../runs/schedules";
import { resolveSkus } from "../plans/sku-source";
import { verifyPlan } from "../fleet/verify";
import { checkPlan } from "../runs/check";
import { listNodes } from "../fleet/node-rules";
import { ChangeFanout } from "../runs/changes";
import { schedulerMetrics } from "./metrics";
import { opsDocument } from "./openapi";
import { mountConsole } from "./console/console";
import { collectHotSkus, hotCollectSchema, hotQuerySchema } from "../fleet/hot-skus";
import { describeIssues, InvalidFileError } from "../config/schema-errors";
import type { HotList } from "./answers";

function errorBody(code: string, message: string, details?: readonly string[]) {
  return { error: { code, message, ...(details ? { details } : {}) } };
}

/** The largest request body the ops API reads (a plan with a long SKU list fits). */
const MAX_BODY_BYTES = 1024 * 1024;

export function opsApp(engine: Engine): Hono {
  const app = new Hono();
  app.onError((e, c) => {
    if (isInvalidFileError(e)) return c.json(errorBody("invalid_plan", e.message, e.problems), 400);
    if (e instanceof SchedulerRedisError) return c.json(errorBody("unavailable", e.message), 503);
    if (e instanceof HTTPException) return c.json(errorBody(e.status === 401 ? "unauthorized" : e.status === 503 ? "unavailable" : "bad_request", e.message), e.status);
    // The detail goes to the log under an id; the caller gets the id only.
    const id = randomUUID();
    console.error(`ops API internal error, request ${id}:`, e);
    return c.json(errorBody("internal", `internal error; the scheduler's log has the details under request ${id}`), 500);
  });
  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));
  // Unauthenticated, so it says whether the scheduler's Redis answers, not where it is or what it said.
  app.get("/healthz", async (c) => ((await engine.health()).ok ? c.json({ ok: true }) : c.json({ ok: false, error: "the scheduler's Redis is not answering" }, 503)));
  // Open like /healthz: the document is generated from the code's schemas and holds nothing of the config.
  let document: string | undefined;
  app.get("/openapi.json", (c) => c.body((document ??= JSON.stringify(opsDocument())), 200, { "Content-Type": "application/json" }));
  // A node's heartbeat: its own token (registryToken), not the ops token; off when none is configured.
  app.post("/v1/nodes/announce", async (c) => {
    if (engine.cfg.registryToken === "") return c.json(errorBody("not_found", "announcing is off: the config has no registryToken"), 404);
    if (bearerVerdict(c.req.header("Authorization"), engine.cfg.registryToken) !== "ok") return c.json(errorBody("unauthorized", "missing or invalid registry token"), 401);
    return validated(c, NODE_SHAPE, async (body) => {
      const e = await engine.registry.announce(body);
      // It is back: the purges it missed go to it now, rather than at the next retry.
      void engine.purges.replayNode(e.name).catch((err: Error) => console.error(`scheduler: sending ${e.name} the purges it missed: ${err.message}`));
      return c.json(e, 200);
    });
  });
  // The operator console (`/`, `/console/*`): its own sign-in and sessions, since a browser sends no bearer header.
  mountConsole(app, engine);
  // Any Authorization but the right bearer token is 401 unauthorized with a message (hono's bearerAuth answered
  // another scheme, e.g. Basic, 400 with an empty message: found by the OpenAPI fuzzing).
  if (engine.cfg.opsToken !== "") {
    app.use("/*", async (c, next) => {
      const verdict = bearerVerdict(c.req.header("Authorization"), engine.cfg.opsToken);
      if (verdict === "ok") return next();
      c.header("WWW-Authenticate", verdict === "missing" ? "Bearer" : 'Bearer error="invalid_token"');
      return c.json(errorBody("unauthorized", verdict === "missing" ? "missing Authorization: Bearer token" : "invalid bearer token"), 401);
    });
  }
  // Every route below needs the scheduler's Redis: without it, a bounded 503 rather than a hung request.
  // (A verify or a purge asks the nodes too, and takes as long as they do; a purge bounds its own wait for Redis.)
  const unanswered = (): HTTPException => new HTTPException(503, { message: `the scheduler's Redis did not answer within ${engine.cfg.redisTimeoutMs} ms` });
  const bounded = timeout(engine.cfg.redisTimeoutMs, unanswered);
  app.use("/v1/*", (c, next) => (c.req.path === "/v1/verify" || c.req.path === "/v1/purge" || (c.req.path === "/v1/hot" && c.req.method === "POST") || (c.req.path === "/v1/nodes" && c.req.method === "GET") ? next() : bounded(c, next)));
  app.use("/v1/*", bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => c.json(errorBody("payload_too_large", `bodies are limited to ${MAX_BODY_BYTES} bytes`), 413) }));

  const readPlan = async (c: Context) => {
    const body = await readJson(c, "{plan: {...}}");
    const plan = typeof body === "object" && body !== null && "plan" in body ? (body as { plan: unknown }).plan : undefined;
    if (plan === undefined) throw new HTTPException(400, { message: "body must be JSON {plan: {...}}" });
    return parsePlan(plan, "plan", "api");
  };

  app.post("/v1/runs", async (c) => {
    const runId = await engine.startRun(await readPlan(c), "api");
    return c.json({ runId, status: `/v1/runs/${runId}` }, 202);
  });
  app.get("/v1/runs", async (c) => {
    const raw = c.req.query("limit") ?? "20";
    const limit = Number(raw);
    if (!/^\d+$/.test(raw) || limit < 1 || limit > 1000) throw new HTTPException(400, { message: `limit must be an integer in 1..1000, got ${JSON.stringify(raw)}` });
    const ids = await engine.store.list(limit);
    const reports = await Promise.all(ids.map((id) => engine.store.report(id)));
    return c.json({ runs: reports.filter((r) => r !== null).map(({ nodes: _n, ...r }) => r) });
  });
  app.get("/v1/runs/:id", async (c) => {
    const r = await engine.store.report(c.req.param("id"));
    return r ? c.json(r) : c.json(errorBody("not_found", `no run ${c.req.param("id")}`), 404);
  });
  app.get("/v1/runs/:id/failures", async (c) => {
    if (!(await engine.store.meta(c.req.param("id")))) return c.json(errorBody("not_found", `no run ${c.req.param("id")}`), 404);
    return c.json({ failures: await engine.store.failures(c.req.param("id")) });
  });
  // Readiness of a posted plan on its target nodes (warms nothing).
  app.post("/v1/verify", async (c) => {
    const plan = await readPlan(c);
    return c.json(await verifyPlan(await engine.withFleet(), plan, await resolveSkus(plan.skus, engine.redis)));
  });
  // A dry run (`prewarm check`): reads the run store and the fleet, sends nothing to the nodes.
  app.post("/v1/check", async (c) => {
    const plan = await readPlan(c);
    return c.json(await checkPlan(await engine.withFleet(), engine.store, plan, await resolveSkus(plan.skus, engine.redis)));
  });
  // A fleet purge: sent to every target node, recorded; 200 when every node confirmed, else 502 naming those that did not
  // (they are sent it again until they confirm). `by` is recorded as the caller gives it, beside the caller's address.
  app.post("/v1/purge", async (c) =>
    validated(c, "{skus?: [...], tags?: [...], soft?, region?, nodes?: [...], by?}", async (body) => {
      const p = parsePurge(body, "purge");
      let address: string | undefined;
      try {
        address = getConnInfo(c).remote.address;
      } catch {
        address = undefined; // not served by @hono/node-server (app.request in tests)
      }
      const r = await engine.purges.purge(p, { via: "api", ...(p.by ? { user: p.by } : {}), ...(address ? { host: address } : {}) });
      if (r.ok) return c.json(r, 200);
      const missing = r.results.filter((n) => n.status !== "purged");
      return c.json({ ...errorBody("not_all_purged", `${missing.length} of ${r.results.length} nodes did not confirm the purge (${missing.map((n) => `${n.name}: ${n.code ?? "?"}`).join(", ")}); it is sent to them again until they do`), purge: r }, 502);
    }),
  );
  app.get("/v1/purges", async (c) => {
    const raw = c.req.query("limit") ?? "20";
    const limit = Number(raw);
    if (!/^\d+$/.test(raw) || limit < 1 || limit > 1000) throw new HTTPException(400, { message: `limit must be an integer in 1..1000, got ${JSON.stringify(raw)}` });
    const reports = await Promise.all((await engine.purges.list(limit)).map((id) => engine.purges.report(id)));
    return c.json({ purges: reports.filter((r) => r !== null) });
  });
  app.get("/v1/purges/:id", async (c) => {
    const r = await engine.purges.report(c.req.param("id"));
    return r ? c.json(r) : c.json(errorBody("not_found", `no purge ${c.req.param("id")}`), 404);
  });
  // Prometheus: the queues, open runs, readiness (behind the token like the rest; Prometheus sends it as a bearer).
  const registry = schedulerMetrics(engine);
  app.get("/metrics", async (c) => {
    const text = await within(registry.metrics(), engine.cfg.redisTimeoutMs, unanswered);
    return c.body(text, 200, { "Content-Type": registry.contentType });
  });
  // Each node with its state and rules version (the nodes without a heartbeat are asked for their /healthz, within HEALTH_PROBE_TIMEOUT_MS).
  app.get("/v1/nodes", async (c) => c.json({ nodes: await listNodes(engine.cfg.nodes, await within(engine.registry.list(), engine.cfg.redisTimeoutMs, unanswered)) }));
  app.post("/v1/nodes", async (c) => validated(c, NODE_SHAPE, async (body) => c.json(await engine.registry.add(body), 201)));
  app.delete("/v1/nodes/:name", async (c) => ((await engine.registry.remove(c.req.param("name"))) ? c.body(null, 204) : c.json(errorBody("not_found", `no registry node ${c.req.param("name")}`), 404)));
  const changes = new ChangeFanout(engine);
  app.post("/v1/changes", async (c) =>
    validated(c, "{skus: [...], regions?: [...]}", async (body) => {
      const runId = await changes.notify(body);
      return c.json({ runId, status: `/v1/runs/${runId}` }, 202);
    }),
  );
  // The fleet's hottest SKUs (`prewarm hot`): every node's most-read SKUs added up into a sorted set of the
  // scheduler's Redis, which a plan's skus.hot reads. Over the API only keys under `hot:`, so a caller cannot
  // overwrite the scheduler's own keys.
  app.post("/v1/hot", async (c) =>
    validated(c, HOT_SHAPE, async (body) => {
      const r = hotCollectSchema.safeParse(body);
      if (!r.success) throw new InvalidFileError("hot", describeIssues(r.error));
      return c.json(await collectHotSkus(await engine.withFleet(), engine.redis, r.data.key, r.data.top), 200);
    }),
  );
  // What the last collection into `key` found, hottest first.
  app.get("/v1/hot", async (c) => {
    const top = c.req.query("top");
    const r = hotQuerySchema.safeParse({ key: c.req.query("key"), top: top === undefined ? undefined : Number(top) });
    if (!r.success) return c.json(errorBody("bad_request", "invalid query", describeIssues(r.error)), 400);
    const flat = await engine.redis.zrevrange(r.data.key, 0, r.data.top - 1, "WITHSCORES");
    const answer: HotList = { key: r.data.key, skus: [] };
    for (let i = 0; i + 1 < flat.length; i += 2) answer.skus.push({ sku: flat[i]!, reads: Number(flat[i + 1]) });
    return c.json(answer);
  });
  app.get("/v1/schedules", async (c) => c.json({ schedules: await listSchedules(engine) }));
  app.post("/v1/schedules", async (c) => c.json(await schedulePlan(engine, await readPlan(c)), 201));
  app.delete("/v1/schedules/:plan", async (c) =>
    (await unschedulePlan(engine, c.req.param("plan"))) ? c.body(null, 204) : c.json(errorBody("not_found", `no schedule for plan ${c.req.param("plan")}`), 404),
  );

  const board = new HonoAdapter(serveStatic);
  createBullBoard({ queues: engine.queues().map((q) => new BullMQAdapter(q)), serverAdapter: board });
  board.setBasePath("/admin/queues");
  app.route("/admin/queues", board.registerPlugin());
  return app;
}

const NODE_SHAPE = "{name, url, region, processes?, version?}";
const HOT_SHAPE = "{key?, top?}";

/** A request's JSON body; a 400 naming the `shape` expected when it is not JSON. */
async function readJson(c: Context, shape: string): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new HTTPException(400, { message: `body must be JSON ${shape}` });
  }
}

/** Runs `fn` on a JSON body and answers what fails its validation as a 400 `bad_request` naming the fields. */
async function validated(c: Context, shape: string, fn: (body: unknown) => Promise<Response>): Promise<Response> {
  const body = await readJson(c, shape);
  try {
    return await fn(body);
  } catch (e) {
    if (isInvalidFileError(e)) return c.json(errorBody("bad_request", e.message, e.problems), 400);
    throw e;
  }
}

/** Serves `app` (the engine's ops app unless given: the tests give one whose answers they check). */
export function serveOps(engine: Engine, port: number, hostname = "127.0.0.1", app: Hono = opsApp(engine)): Promise<ServerType> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port, hostname }, () => resolve(server));
  });
}

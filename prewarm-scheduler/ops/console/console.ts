/**
 * The operator console, served by `prewarm serve` on the ops API's own origin:
 * `/` (Now), `/console/fleet`, `/console/runs/:id`, `/console/purges/:id`,
 * `/console/campaigns/:plan`, `/console/hot`, `/console/api` (both APIs' OpenAPI
 * documents, api-reference.ts; the edge node's served at
 * `/console/openapi/edge-node.json`), and the sign-in.
 *
 * Pages are rendered on the server (views.ts); htmx (served from the package,
 * never fetched from the internet) swaps each page's live part every 1-2 s
 * and sends the forms. Every action is a request to the ops API itself (made
 * in-process, with the ops token, so it is validated and answered exactly as
 * a client's would be, and its error text is shown as it is).
 *
 * Closed by default like the API: without an ops token configured
 * (`--no-auth`) the console is open; otherwise every page needs a session
 * (session.ts), opened by signing in with the ops token. Every POST/DELETE
 * needs the session's CSRF token (the `X-CSRF-Token` header htmx sends, or the
 * form's `_csrf` field) and a same-origin request (`Sec-Fetch-Site`, `Origin`);
 * the cookie is SameSite=Strict besides.
 */
import type { Context, Hono, Next } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Engine } from "../../runs/engine";
import { summarize } from "../../runs/engine";
import { listSchedules, scheduledPlan } from "../../runs/schedules";
import type { RunReport } from "../../runs/run-store";
import type { VerifyReport } from "../../fleet/verify";
import { listNodes } from "../../fleet/node-rules";
import { probeMetrics } from "../../fleet/node-metrics";
import type { PurgeReport } from "../../fleet/purge";
import type { Plan } from "../../plans/plan";
import { DEFAULT_HOT_KEY as HOT_KEY } from "../../fleet/hot-skus"; // the set the Hot page collects into and reads (the ops API's default)
import { consoleAsset } from "./assets";
import { apiReference, type ApiDocument, type ReferencedDocument } from "./api-reference";
import { opsDocument } from "../openapi";
import edgeNodeDocument from "../../../docs/openapi/edge-node.json"; // the committed document, the one every node serves
import { SESSION_COOKIE, SESSION_TTL_S, Sessions, sameSecret } from "./session";
import {
  addNodeForm,
  apiError,
  campaignLive,
  failuresTable,
  fleetLive,
  hotLive,
  layout,
  live,
  notice,
  nowLive,
  planForm,
  planText,
  purgeView,
  runLive,
  runStarted,
  signInPage,
  stale,
  type ApiError,
  type Html,
  type Page,
} from "./views";
import { html } from "hono/html";

/** Failed SKUs per page of a run's failures. */
export const FAILURES_PER_PAGE = 50;
/** A run that ended this recently still shows its bars among the runs in progress (at 100 %, or where it stopped). */
const JUST_ENDED_MS = 60_000;

const isLoopback = (host: string): boolean => host === "localhost" || host === "[::1]" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

type Answer = { ok: true; status: number; body: unknown } | { ok: false; error: ApiError };

interface ConsoleEnv {
  Variables: { csrf: string | null; signedIn: boolean };
}
type C = Context<ConsoleEnv>;

/** Adds the console's routes to the ops app, before its bearer check (the console has its own sessions). */
export function mountConsole(app: Hono, engine: Engine): void {
  const ui = app as unknown as Hono<ConsoleEnv>;
  const auth = engine.cfg.opsToken !== "";
  const sessions = new Sessions(engine.redis, engine.cfg.prefix, engine.cfg.opsToken);

  /** A request to the ops API, in-process, with the ops token: what it answers, or its error as it said it. */
  const api = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (auth) headers["Authorization"] = `Bearer ${engine.cfg.opsToken}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await app.fetch(new Request(`http://console.internal${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }));
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text === "" ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    if (res.ok) return { ok: true, status: res.status, body: json };
    const e = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
    return {
      ok: false,
      error: {
        status: res.status,
        code: typeof e?.code === "string" ? e.code : `http_${res.status}`,
        message: typeof e?.message === "string" ? e.message : `the ops API answered ${res.status}`,
        ...(Array.isArray(e?.details) ? { details: e.details.filter((d): d is string => typeof d === "string") } : {}),
      },
    };
  };

  const security = (c: C) => {
    c.header("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    c.header("Cache-Control", "no-store");
  };

  /** Same-origin by what the browser says of the request (Sec-Fetch-Site, else Origin); a client that says neither is not a browser sent cross-site. */
  const sameOrigin = (c: C): boolean => {
    const site = c.req.header("Sec-Fetch-Site");
    if (site !== undefined && site !== "same-origin" && site !== "none") return false;
    const origin = c.req.header("Origin");
    return origin === undefined || origin === new URL(c.req.url).origin;
  };

  const refuse = (c: C, status: 401 | 403, code: string, message: string) => c.json({ error: { code, message } }, status);

  ui.get("/console/assets/:file", (c) => {
    const a = consoleAsset(c.req.param("file"));
    if (a === null) return c.json({ error: { code: "not_found", message: `no console asset ${c.req.param("file")}` } }, 404);
    return c.body(a.body, 200, { "Content-Type": a.type, "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff" });
  });

  ui.get("/console/signin", (c) => {
    security(c);
    if (!auth) return c.redirect("/", 303);
    return c.html(signInPage({ next: safeNext(c.req.query("next")) }));
  });

  ui.post("/console/signin", async (c) => {
    security(c);
    if (!auth) return c.redirect("/", 303);
    if (!sameOrigin(c)) return refuse(c, 403, "cross_site", "sign-in is only accepted from the console's own page");
    const form = await c.req.parseBody();
    const token = typeof form["token"] === "string" ? form["token"] : "";
    const next = safeNext(typeof form["next"] === "string" ? form["next"] : undefined);
    if (!sameSecret(token, engine.cfg.opsToken)) return c.html(signInPage({ error: "That is not the ops token.", next }), 401);
    const { id } = await sessions.open();
    setCookie(c, SESSION_COOKIE, id, { httpOnly: true, sameSite: "Strict", secure: !isLoopback(new URL(c.req.url).hostname), path: "/", maxAge: SESSION_TTL_S });
    return c.redirect(next, 303);
  });

  // Every other page and action needs a session (when the console has a token to check).
  const guard = async (c: C, next: Next) => {
    security(c);
    if (!auth) {
      c.set("csrf", null);
      c.set("signedIn", false);
    } else {
      const s = await sessions.get(getCookie(c, SESSION_COOKIE));
      if (s === null) {
        if (c.req.method !== "GET") return refuse(c, 401, "unauthorized", "sign in to the console first (your session ended, or you signed out)");
        const target = `/console/signin?next=${encodeURIComponent(c.req.path === "/" ? "/" : c.req.path)}`;
        if (c.req.header("HX-Request") === "true") {
          c.header("HX-Redirect", target);
          return c.body(null, 204);
        }
        return c.redirect(target, 303);
      }
      c.set("csrf", s.csrf);
      c.set("signedIn", true);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      if (!sameOrigin(c)) return refuse(c, 403, "cross_site", "the console only takes actions from its own pages");
      const csrf = c.get("csrf");
      if (csrf !== null) {
        let sent = c.req.header("X-CSRF-Token");
        if (sent === undefined && (c.req.header("Content-Type") ?? "").match(/^(application\/x-www-form-urlencoded|multipart\/form-data)/)) {
          const f = (await c.req.parseBody())["_csrf"];
          sent = typeof f === "string" ? f : undefined;
        }
        if (sent === undefined || !sameSecret(sent, csrf)) return refuse(c, 403, "csrf", "missing or wrong CSRF token: reload the page and try again");
      }
    }
    await next();
  };
  ui.use("/", guard);
  ui.use("/console/*", guard);

  ui.post("/console/signout", async (c) => {
    await sessions.close(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: !isLoopback(new URL(c.req.url).hostname) });
    return c.redirect(auth ? "/console/signin" : "/", 303);
  });

  /** A whole page, or only its live part when htmx asks for it. */
  const page = (c: C, o: { title: string; page: Page; live: () => Promise<Html>; url: string; everyS?: number; before?: Html; after?: Html; status?: 200 | 404 }) =>
    (async () => {
      const part = live(o.url, o.everyS ?? 1, await o.live());
      if (c.req.header("HX-Request") === "true" && c.req.header("HX-Target") === "live") return c.html(part);
      return c.html(layout({ title: o.title, page: o.page, csrf: c.get("csrf"), signedIn: c.get("signedIn"), body: html`${o.before ?? ""}${part}${o.after ?? ""}` }), o.status ?? 200);
    })();

  /** An action's answer: a fragment for htmx, a page for a plain form post. */
  const result = (c: C, body: Html, status: 200 | 201 | 202 | 400 | 404 = 200) =>
    c.req.header("HX-Request") === "true" ? c.html(body) : c.html(layout({ title: "Result", page: "now", csrf: c.get("csrf"), signedIn: c.get("signedIn"), body }), status);
  const failed = (c: C, e: ApiError) => result(c, apiError(e), e.status === 404 ? 404 : 400);

  // ---- Now
  ui.get("/", (c) =>
    page(c, {
      title: "Now",
      page: "now",
      url: "/",
      live: async () => {
        const now = Date.now();
        const reports = await runReports(engine, 30);
        const purgeIds = await engine.purges.list(5);
        const purges = (await Promise.all(purgeIds.map((id) => engine.purges.report(id)))).filter((p): p is PurgeReport => p !== null);
        return nowLive({ running: reports.filter((r) => r.status === "running" || (r.finishedAt !== null && now - r.finishedAt < JUST_ENDED_MS)), recent: reports.filter((r) => r.status !== "running").slice(0, 10), schedules: await listSchedules(engine, now), purges, now });
      },
      after: html`<section><h2>Start a run</h2>${planForm({ action: "/console/runs", label: "Start the run", id: "start-run", example: EXAMPLE_PLAN })}</section>`,
    }),
  );

  ui.post("/console/runs", async (c) => {
    const text = (await c.req.parseBody())["plan"];
    let plan: unknown;
    try {
      plan = JSON.parse(typeof text === "string" ? text : "");
    } catch (e) {
      return failed(c, { status: 400, code: "bad_request", message: `the plan is not JSON: ${(e as Error).message}` });
    }
    const a = await api("POST", "/v1/runs", { plan });
    return a.ok ? result(c, runStarted((a.body as { runId: string }).runId), 202) : failed(c, a.error);
  });

  // ---- Run
  ui.get("/console/runs/:id", async (c) => {
    const id = c.req.param("id");
    const pageNo = Math.max(1, Math.floor(Number(c.req.query("page") ?? "1")) || 1);
    const code = c.req.query("code") ?? null;
    const url = `/console/runs/${encodeURIComponent(id)}`;
    const r0 = await engine.store.report(id);
    if (r0 === null) {
      return page(c, { title: `Run ${id}`, page: "run", url, status: 404, live: async () => stale(`No run ${id}: it is not kept (never started, or dropped by the run store's retention).`) });
    }
    const all = await engine.store.failures(id);
    const codes = [...new Set(all.map((f) => f.code))].sort();
    const chosen = code === null ? all : all.filter((f) => f.code === code);
    const pages = Math.max(1, Math.ceil(chosen.length / FAILURES_PER_PAGE));
    const p = Math.min(pageNo, pages);
    const job = await engine.runs.getJob(r0.jobId);
    const plan = (job?.data as { plan?: Plan } | undefined)?.plan;
    return page(c, {
      title: `Run ${id}`,
      page: "run",
      url,
      live: async () => {
        const r = await engine.store.report(id);
        return r === null ? stale(`Run ${id} is no longer kept (dropped by the run store's retention).`) : runLive({ r, now: Date.now() });
      },
      after: html`${failuresTable({ runId: id, failures: chosen.slice((p - 1) * FAILURES_PER_PAGE, p * FAILURES_PER_PAGE), page: p, pages, code, codes })}
<section><h2>The plan it ran</h2>${plan ? html`<pre>${planText(plan)}</pre>` : html`<p class="muted">Its job is no longer kept (the queue's retention); plan ${r0.plan}.</p>`}</section>`,
    });
  });

  // ---- Purge
  ui.get("/console/purges/:id", async (c) => {
    const id = c.req.param("id");
    return page(c, {
      title: "Purge",
      page: "purge",
      url: `/console/purges/${encodeURIComponent(id)}`,
      everyS: 2,
      live: async () => {
        const p = await engine.purges.report(id);
        return p === null ? stale(`No purge ${id}: it is not (or no longer) kept.`) : purgeView(p, Date.now());
      },
    });
  });

  // ---- Campaign
  ui.get("/console/campaigns/:plan", async (c) => {
    const name = c.req.param("plan");
    const plan = await scheduledPlan(engine, name);
    const url = `/console/campaigns/${encodeURIComponent(name)}`;
    const stragglers = `this campaign's nodes that the last verify found not ready`;
    return page(c, {
      title: `Campaign ${name}`,
      page: "campaign",
      url,
      live: async () => {
        const entry = (await listSchedules(engine)).find((s) => s.plan === name && s.kind === "campaign");
        return entry === undefined ? stale(`No campaign ${name} is scheduled (any more): it was unscheduled, or never was.`) : campaignLive({ entry, plan, now: Date.now() });
      },
      before: html`<section><div class="row">
<button hx-post="${url}/verify" hx-target="#campaign-result" id="verify-now">Verify now</button>
<button class="secondary" hx-post="${url}/rewarm" hx-target="#campaign-result" hx-confirm="Re-warm the stragglers: start a run of ${name} on ${stragglers}?" id="rewarm">Re-warm the stragglers</button>
</div><div id="campaign-result" aria-live="polite"></div></section>`,
      after: html`<section><h2>Plan</h2>${plan ? html`<pre>${planText(plan)}</pre>` : html`<p class="muted">Not kept for this schedule (registered before the console kept plans): schedule it again to see it here.</p>`}</section>`,
    });
  });

  ui.post("/console/campaigns/:plan/verify", async (c) => {
    const name = c.req.param("plan");
    const plan = await scheduledPlan(engine, name);
    if (plan === null) return failed(c, { status: 404, code: "not_found", message: `no campaign ${name} is scheduled (any more)` });
    const a = await api("POST", "/v1/verify", { plan: planInput(plan) });
    if (!a.ok) return failed(c, a.error);
    const report = a.body as VerifyReport;
    // Kept as the campaign's latest readiness, so every operator's page shows it.
    await engine.store.saveReadiness({ plan: name, before: summarize(report), after: null, runId: null });
    return result(c, notice(`Verified: ${report.readyPct.toFixed(1)} % ready${report.met ? "" : ", not met"} (${report.ready} of ${report.total} keys).`));
  });

  ui.post("/console/campaigns/:plan/rewarm", async (c) => {
    const name = c.req.param("plan");
    const plan = await scheduledPlan(engine, name);
    if (plan === null) return failed(c, { status: 404, code: "not_found", message: `no campaign ${name} is scheduled (any more)` });
    const last = await engine.store.readiness(name);
    const summary = last?.after ?? last?.before;
    if (!summary) return failed(c, { status: 400, code: "bad_request", message: "not verified yet: verify first, then re-warm the nodes it finds not ready" });
    const nodes = summary.nodes.filter((n) => n.ready < n.skus).map((n) => n.name);
    if (nodes.length === 0) return result(c, notice("The last verify found every node ready: nothing to re-warm."));
    const a = await api("POST", "/v1/runs", { plan: { ...planInput(plan), schedule: "once", targets: { nodes } } });
    return a.ok ? result(c, runStarted((a.body as { runId: string }).runId), 202) : failed(c, a.error);
  });

  // ---- Fleet
  ui.get("/console/fleet", (c) =>
    page(c, {
      title: "Fleet",
      page: "fleet",
      url: "/console/fleet",
      everyS: 2,
      live: async () => {
        const now = Date.now();
        const [listed, reports] = await Promise.all([engine.registry.list(now).then((reg) => listNodes(engine.cfg.nodes, reg)), runReports(engine, 10)]);
        const nodes = await Promise.all(
          listed.map(async (n) => ({
            ...n,
            metrics: n.state === "live" || n.state === "degraded" ? await probeMetrics(n.url) : null,
            skusPerS: recentRate(reports, n.name),
          })),
        );
        return fleetLive({ nodes, now });
      },
      after: addNodeForm(),
    }),
  );

  ui.post("/console/nodes", async (c) => {
    const f = await c.req.parseBody();
    const field = (k: string) => (typeof f[k] === "string" ? (f[k] as string).trim() : "");
    const a = await api("POST", "/v1/nodes", { name: field("name"), url: field("url"), region: field("region") });
    return a.ok ? result(c, notice(`Added ${field("name")} to the registry.`), 201) : failed(c, a.error);
  });

  // A form post (the table's rows are swapped every 2 s: a button in them could be replaced under the pointer).
  ui.post("/console/nodes/remove", async (c) => {
    const raw = (await c.req.parseBody())["name"];
    const name = typeof raw === "string" ? raw.trim() : "";
    const a = await api("DELETE", `/v1/nodes/${encodeURIComponent(name)}`);
    return a.ok ? result(c, notice(`Removed ${name} from the registry.`)) : failed(c, a.error);
  });

  // ---- Hot
  ui.get("/console/hot", (c) =>
    page(c, {
      title: "Hot SKUs",
      page: "hot",
      url: "/console/hot",
      everyS: 2,
      live: async () => {
        const a = await api("GET", `/v1/hot?key=${encodeURIComponent(HOT_KEY)}&top=100`);
        return a.ok ? hotLive({ key: HOT_KEY, skus: (a.body as { skus: { sku: string; reads: number }[] }).skus, collected: null }) : apiError(a.error);
      },
      before: html`<section><p>The fleet's most-read SKUs (every node's <code>GET /v1/hot</code>, added up) are collected into <code>${HOT_KEY}</code> in the scheduler's Redis; a run of them warms the top N on every node.</p>
<form hx-post="/console/hot/collect" hx-target="#hot-result" method="post" action="/console/hot/collect" class="inline"><button type="submit" id="collect-hot">Collect now</button></form>
<form hx-post="/console/hot/run" hx-target="#hot-result" hx-confirm="Warm the hottest SKUs on every node now?" method="post" action="/console/hot/run" class="inline"><label>Top <input name="top" type="number" min="1" max="10000" value="100" required></label><button type="submit" id="warm-hot">Warm them now</button></form>
<div id="hot-result" aria-live="polite"></div></section>`,
    }),
  );

  // ---- API: both OpenAPI documents, rendered from the documents themselves
  let docs: ReferencedDocument[] | null = null;
  ui.get("/console/api", (c) => {
    docs ??= [
      { id: "ops", name: "Ops API", doc: opsDocument() as unknown as ApiDocument, download: { href: "/openapi.json", file: "ops-api.json" }, servedAt: "`GET /openapi.json` of `prewarm serve` (this origin), no token" },
      { id: "edge", name: "Edge node", doc: edgeNodeDocument as unknown as ApiDocument, download: { href: "/console/openapi/edge-node.json", file: "edge-node.json" }, servedAt: "`GET /openapi.json` of every node, no token" },
    ];
    return c.html(layout({ title: "API reference", page: "api", csrf: c.get("csrf"), signedIn: c.get("signedIn"), body: apiReference(docs) }));
  });
  // The node's document, as the repository has it (docs/openapi/edge-node.json): nothing is fetched from a node.
  let edgeText: string | null = null;
  ui.get("/console/openapi/edge-node.json", (c) => c.body((edgeText ??= `${JSON.stringify(edgeNodeDocument, null, 2)}\n`), 200, { "Content-Type": "application/json" }));

  ui.post("/console/hot/collect", async (c) => {
    const a = await api("POST", "/v1/hot", { key: HOT_KEY, top: 1000 });
    if (!a.ok) return failed(c, a.error);
    const r = a.body as { skus: number; nodes: { name: string; skus: number; error?: string }[] };
    return result(c, notice(`Collected ${r.skus} SKUs from ${r.nodes.filter((n) => !n.error).length} of ${r.nodes.length} nodes${r.nodes.some((n) => n.error) ? ` (not: ${r.nodes.filter((n) => n.error).map((n) => `${n.name}: ${n.error}`).join(", ")})` : ""}.`));
  });

  ui.post("/console/hot/run", async (c) => {
    const raw = (await c.req.parseBody())["top"];
    const top = Number(typeof raw === "string" ? raw : "");
    const a = await api("POST", "/v1/runs", { plan: { name: "hot-skus", skus: { hot: { key: HOT_KEY, top } }, targets: "all", schedule: "once" } });
    return a.ok ? result(c, runStarted((a.body as { runId: string }).runId), 202) : failed(c, a.error);
  });
}

/** A path of the console to go to after signing in (never another origin). */
function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/(?!\/)[A-Za-z0-9/_.~%-]*$/.test(next) && !next.startsWith("/console/sign") ? next : "/";
}

async function runReports(engine: Engine, limit: number): Promise<RunReport[]> {
  const ids = await engine.store.list(limit);
  return (await Promise.all(ids.map((id) => engine.store.report(id)))).filter((r): r is RunReport => r !== null);
}

/** A node's SKUs/s in its most recent run that warmed something on it. */
function recentRate(reports: RunReport[], node: string): number | null {
  for (const r of reports) {
    const n = r.nodes.find((x) => x.name === node);
    if (n && n.warmed > 0 && n.durationMs > 0) return n.warmed / (n.durationMs / 1000);
  }
  return null;
}

/** A plan as validated, written back as the ops API takes it (durations in ms, not the bare seconds a number means). */
function planInput(plan: Plan): Record<string, unknown> {
  const ms = (v: number) => `${v}ms`;
  const c = plan.schedule.campaign;
  return {
    ...plan,
    deadline: ms(plan.deadline),
    verify: { ...plan.verify, margin: ms(plan.verify.margin) },
    schedule: c ? { campaign: { ...c, t0: new Date(c.t0).toISOString(), lead: ms(c.lead), refreshEvery: ms(c.refreshEvery), until: ms(c.until), ...(c.verifyBefore !== undefined ? { verifyBefore: ms(c.verifyBefore) } : {}) } } : plan.schedule,
  };
}

const EXAMPLE_PLAN = JSON.stringify({ name: "flash-sale", skus: { list: ["SKU-000001", "SKU-000002"] }, targets: "all", schedule: "once" }, null, 2);

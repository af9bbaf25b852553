/**
 * The console's HTML, rendered on the server with hono's `html` templates
 * (every interpolated value is escaped; only other templates go in as they
 * are). Each page has a live part (`#live`) that htmx asks for again every
 * second or two and swaps in place, so a page follows the runs, the fleet and
 * other operators' actions without a reload.
 */
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { RunReport, ReadinessSummary } from "../../runs/run-store";
import type { ScheduleEntry } from "../../runs/schedules";
import type { ListedNode } from "../../fleet/node-rules";
import type { NodeMetrics } from "../../fleet/node-metrics";
import type { PurgeReport } from "../../fleet/purge";
import { describePurge, describeWho } from "../../fleet/purge";
import type { Plan } from "../../plans/plan";

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export type Page = "now" | "fleet" | "hot" | "run" | "campaign" | "purge" | "api";

/** An error answered by the ops API, as it said it: its message, and its details field by field. */
export interface ApiError {
  status: number;
  code: string;
  message: string;
  details?: string[];
}

export const fmtTime = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;

/** 75_000 -> "1m 15s". */
export function fmtSpan(ms: number): string {
  let s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [d ? `${d}d` : "", h ? `${h}h` : "", m ? `${m}m` : "", s || !(d || h || m) ? `${s}s` : ""].filter((p) => p !== "");
  return parts.slice(0, 2).join(" ");
}

export const fmtIn = (at: number, now: number): string => (at >= now ? `in ${fmtSpan(at - now)}` : `${fmtSpan(now - at)} ago`);
const pct = (x: number): string => `${(Math.floor(x * 10) / 10).toFixed(1)} %`;

export function layout(o: { title: string; page: Page; csrf: string | null; signedIn: boolean; body: Html }): Html {
  const link = (href: string, page: Page, label: string) => html`<a href="${href}" ${o.page === page ? html`aria-current="page"` : ""}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"historyCacheSize":0}'>
<title>${o.title} · prewarm console</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/htmx.min.js" defer></script>
<script src="/console/assets/console.js" defer></script>
</head>
<body ${o.csrf !== null ? html`hx-headers="${JSON.stringify({ "X-CSRF-Token": o.csrf })}"` : ""}>
<header>
<span class="brand">prewarm</span>
<nav>${link("/", "now", "Now")} ${link("/console/fleet", "fleet", "Fleet")} ${link("/console/hot", "hot", "Hot")} ${link("/console/api", "api", "API")}</nav>
${o.signedIn ? html`<form method="post" action="/console/signout" class="inline"><input type="hidden" name="_csrf" value="${o.csrf ?? ""}"><button type="submit" id="signout">Sign out</button></form>` : ""}
</header>
<main>
<h1>${o.title}</h1>
${o.body}
</main>
</body>
</html>`;
}

export function signInPage(o: { error?: string; next: string }): Html {
  return html`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in · prewarm console</title><link rel="stylesheet" href="/console/assets/console.css"></head>
<body><main><section class="signin">
<h1>prewarm console</h1>
<p class="muted">Sign in with the scheduler's ops token (the config's <code>opsToken</code>). It is sent once; the console keeps a session cookie, never the token.</p>
${o.error ? html`<div class="alert" role="alert">${o.error}</div>` : ""}
<form method="post" action="/console/signin">
<input type="hidden" name="next" value="${o.next}">
<label>Ops token <input type="password" name="token" id="token" required autocomplete="current-password" autofocus></label>
<p><button type="submit" id="signin">Sign in</button></p>
</form>
</section></main></body></html>`;
}

/** The live part of a page: asked for again every `everyS` seconds, swapped in place. */
export function live(url: string, everyS: number, body: Html): Html {
  return html`<div id="live" hx-get="${url}" hx-trigger="every ${everyS}s" hx-target="this" hx-swap="outerHTML" hx-disinherit="*">${body}</div>`;
}

/** The API's error as it said it: with details, its message's first line (the rest lists them) and the details one by one. */
export function apiError(e: ApiError): Html {
  const withDetails = e.details !== undefined && e.details.length > 0;
  return html`<div class="alert" role="alert" data-code="${e.code}"><b>${withDetails ? e.message.split("\n")[0] : e.message}</b>${
    e.details && e.details.length > 0 ? html`<ul>${e.details.map((d) => html`<li>${d}</li>`)}</ul>` : ""
  }</div>`;
}

export const notice = (body: Html | string): Html => html`<div class="notice" role="status">${body}</div>`;
export const stale = (body: Html | string): Html => html`<div class="stale" role="status" data-stale="1">${body}</div>`;

const failureChips = (byCode: Record<string, number>): Html =>
  html`${Object.entries(byCode)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => html`<span class="chip" data-code="${code}">${code}: ${n}</span>`)}`;

/** One node of a run: a progress bar of its warmed SKUs against those planned, its pace, its failures by code. */
function nodeProgress(r: RunReport, n: RunReport["nodes"][number]): Html {
  const planned = r.totalSkus;
  const ratio = planned > 0 ? Math.min(1, n.warmed / planned) : 0;
  const rate = n.durationMs > 0 ? n.warmed / (n.durationMs / 1000) : 0;
  return html`<div class="node" data-node="${n.name}" data-warmed="${n.warmed}" data-planned="${planned}" data-failed="${n.failed}">
<div class="node-head"><b>${n.name}</b><span class="muted">${n.region}</span><span class="pct">${pct(ratio * 100)}</span><span>${n.warmed} / ${planned} warmed</span><span>${rate.toFixed(0)} SKUs/s</span>${n.failed > 0 ? html`<span class="bad">${n.failed} failed</span>` : ""}</div>
<progress max="${Math.max(planned, 1)}" value="${Math.min(n.warmed, planned)}" aria-label="${n.name}: warmed of planned"></progress>
${failureChips(n.failedByCode)}
</div>`;
}

const statusClass = (s: RunReport["status"]): string => (s === "done" ? "ok" : s === "failed" ? "bad" : s === "superseded" ? "warn" : "");

export function runCard(r: RunReport, now: number): Html {
  return html`<div class="card run" data-run="${r.runId}" data-status="${r.status}">
<div class="node-head"><a href="/console/runs/${encodeURIComponent(r.runId)}"><b>${r.runId}</b></a><span>plan ${r.plan}</span><span class="muted">${r.trigger}</span><span class="${statusClass(r.status)}">${r.status}</span><span class="muted">started ${fmtIn(r.createdAt, now)}${r.status === "running" ? html`, deadline ${fmtIn(r.deadline, now)}` : ""}</span></div>
${r.nodes.length === 0 ? html`<p class="muted">expanding the plan…</p>` : r.nodes.map((n) => nodeProgress(r, n))}
</div>`;
}

function scheduleRow(s: ScheduleEntry, now: number): Html {
  const name = s.kind === "campaign" ? html`<a href="/console/campaigns/${encodeURIComponent(s.plan)}">${s.plan}</a>` : html`${s.plan}`;
  return html`<tr data-plan="${s.plan}"><td>${name}</td><td>${s.kind}${s.cron ? html` <code>${s.cron}</code>` : ""}</td><td>${s.next !== null ? html`${fmtTime(s.next)} <span class="muted">(${fmtIn(s.next, now)})</span>` : html`<span class="muted">none ahead</span>`}</td><td>${
    s.t0 !== undefined ? html`${fmtTime(s.t0)} <b class="countdown">${s.t0 >= now ? `T0 in ${fmtSpan(s.t0 - now)}` : `T0 + ${fmtSpan(now - s.t0)}`}</b>` : html`<span class="muted">—</span>`
  }</td><td>${s.readiness ? readinessBadge(s.readiness.after ?? s.readiness.before) : html`<span class="muted">—</span>`}</td></tr>`;
}

const readinessBadge = (r: ReadinessSummary): Html => html`<span class="${r.met ? "ok" : "bad"}">${pct(r.readyPct)} ready</span> <span class="muted">${fmtTime(r.at)}</span>`;

export function nowLive(o: { running: RunReport[]; schedules: ScheduleEntry[]; recent: RunReport[]; purges: PurgeReport[]; now: number }): Html {
  return html`<section><h2>Runs in progress (and those that ended in the last minute)</h2>${o.running.length === 0 ? html`<p class="muted" id="no-runs">No run in progress.</p>` : o.running.map((r) => runCard(r, o.now))}</section>
<section><h2>Next scheduled runs and campaigns</h2>${
    o.schedules.length === 0
      ? html`<p class="muted">Nothing scheduled (<code>prewarm schedule &lt;plan&gt;</code> or POST /v1/schedules).</p>`
      : html`<div class="table-wrap"><table id="schedules"><thead><tr><th>plan</th><th>kind</th><th>next run</th><th>T0</th><th>readiness</th></tr></thead><tbody>${o.schedules.map((s) => scheduleRow(s, o.now))}</tbody></table></div>`
  }</section>
<div class="grid">
<section><h2>Recent runs</h2>${
    o.recent.length === 0
      ? html`<p class="muted">None yet.</p>`
      : html`<div class="table-wrap"><table><thead><tr><th>run</th><th>status</th><th>warmed</th><th>failed</th><th>ended</th></tr></thead><tbody>${o.recent.map(
          (r) => html`<tr data-run="${r.runId}"><td><a href="/console/runs/${encodeURIComponent(r.runId)}">${r.runId}</a></td><td class="${statusClass(r.status)}">${r.status}</td><td>${r.warmed}</td><td>${r.failed}</td><td class="muted">${r.finishedAt !== null ? fmtIn(r.finishedAt, o.now) : ""}</td></tr>`,
        )}</tbody></table></div>`
  }</section>
<section><h2>Recent purges</h2>${
    o.purges.length === 0
      ? html`<p class="muted">None kept.</p>`
      : html`<div class="table-wrap"><table><thead><tr><th>purge</th><th>what</th><th>by</th><th>nodes</th></tr></thead><tbody>${o.purges.map(
          (p) => html`<tr><td><a href="/console/purges/${encodeURIComponent(p.purgeId)}">${fmtIn(p.createdAt, o.now)}</a></td><td class="wrap">${describePurge(p)}</td><td>${describeWho(p.by)}</td><td class="${p.ok ? "ok" : "bad"}">${p.confirmed}/${p.results.length}</td></tr>`,
        )}</tbody></table></div>`
  }</section>
</div>`;
}

export function planForm(o: { action: string; label: string; example: string; id: string }): Html {
  return html`<form hx-post="${o.action}" hx-target="#${o.id}-result" method="post" action="${o.action}" id="${o.id}">
<label>Plan (JSON, as POST /v1/runs takes it under <code>plan</code>)<textarea name="plan" data-json required spellcheck="false">${o.example}</textarea></label>
<p><button type="submit">${o.label}</button></p>
<div id="${o.id}-result" aria-live="polite"></div>
</form>`;
}

export function runStarted(runId: string): Html {
  return notice(html`Run <a href="/console/runs/${encodeURIComponent(runId)}" data-run-started="${runId}">${runId}</a> started.`);
}

/** A plan for reading: its SKU list cut to its first 20. */
export function planText(plan: Plan): string {
  const list = plan.skus.list;
  const shown = list && list.length > 20 ? { ...plan, skus: { list: [...list.slice(0, 20), `… ${list.length - 20} more`] } } : plan;
  return JSON.stringify(shown, null, 2);
}

export function runLive(o: { r: RunReport; now: number }): Html {
  const r = o.r;
  return html`<section>
<div class="table-wrap"><table><tbody>
<tr><th>status</th><td class="${statusClass(r.status)}" id="run-status">${r.status}${r.reason ? html` <span class="muted">(${r.reason})</span>` : ""}</td></tr>
<tr><th>plan</th><td>${r.plan}</td></tr>
<tr><th>trigger</th><td>${r.trigger}</td></tr>
<tr><th>started</th><td>${fmtTime(r.createdAt)} <span class="muted">(${fmtIn(r.createdAt, o.now)})</span></td></tr>
<tr><th>${r.finishedAt !== null ? "finished" : "deadline"}</th><td>${fmtTime(r.finishedAt ?? r.deadline)}</td></tr>
<tr><th>SKUs per node</th><td>${r.totalSkus} in batches of ${r.batchSize}</td></tr>
<tr><th>warmed / failed</th><td>${r.warmed} / <span class="${r.failed > 0 ? "bad" : ""}">${r.failed}</span>${r.superseded > 0 ? html` (${r.superseded} superseded)` : ""}</td></tr>
</tbody></table></div>
${r.status !== "running" ? notice(`This run has ended (${r.status}).`) : ""}
</section>
<section><h2>Per node</h2>${runCard(r, o.now)}</section>`;
}

export function failuresTable(o: { runId: string; failures: { node: string; sku: string; code: string }[]; page: number; pages: number; code: string | null; codes: string[] }): Html {
  const base = `/console/runs/${encodeURIComponent(o.runId)}`;
  const q = (page: number, code: string | null) => `${base}?page=${page}${code ? `&code=${encodeURIComponent(code)}` : ""}#failures`;
  return html`<section id="failures"><h2>Failed SKUs${o.code ? ` (${o.code})` : ""}</h2>
${o.codes.length > 0 ? html`<p>By code: <a href="${q(1, null)}">all</a> ${o.codes.map((c) => html`· <a href="${q(1, c)}">${c}</a> `)}</p>` : ""}
${
  o.failures.length === 0
    ? html`<p class="muted">No failed SKU${o.code ? " with this code" : ""} kept.</p>`
    : html`<div class="table-wrap"><table><thead><tr><th>SKU</th><th>node</th><th>code</th></tr></thead><tbody>${o.failures.map((f) => html`<tr><td>${f.sku}</td><td>${f.node}</td><td class="bad">${f.code}</td></tr>`)}</tbody></table></div>
<div class="pager">${o.page > 1 ? html`<a href="${q(o.page - 1, o.code)}">← previous</a>` : ""}<span class="muted">page ${o.page} of ${o.pages}</span>${o.page < o.pages ? html`<a href="${q(o.page + 1, o.code)}">next →</a>` : ""}</div>`
}</section>`;
}

function readinessTable(r: ReadinessSummary, title: string): Html {
  return html`<h3>${title}: <span class="${r.met ? "ok" : "bad"}" data-met="${r.met}">${pct(r.readyPct)} ready${r.met ? "" : ", not met"}</span> <span class="muted">${fmtTime(r.at)}</span></h3>
<div class="table-wrap"><table class="readiness"><thead><tr><th>node</th><th>ready</th><th>stragglers by reason</th></tr></thead><tbody>${r.nodes.map(
    (n) => html`<tr data-node="${n.name}" data-ready-pct="${n.readyPct}"><td>${n.name}</td><td class="${n.ready === n.skus ? "ok" : "bad"}">${pct(n.readyPct)} <span class="muted">(${n.ready}/${n.skus})</span>${n.ready === n.skus ? "" : html` <b class="not-ready">not ready</b>`}</td><td class="wrap">${
      Object.keys(n.stragglers).length === 0 ? html`<span class="muted">none</span>` : failureChips(n.stragglers)
    }</td></tr>`,
  )}</tbody></table></div>`;
}

export function campaignLive(o: { entry: ScheduleEntry; plan: Plan | null; now: number }): Html {
  const e = o.entry;
  const t0 = e.t0 ?? o.plan?.schedule.campaign?.t0;
  const rel = (t: number) => (t0 === undefined ? "" : t === t0 ? "T0" : t < t0 ? `T0 − ${fmtSpan(t0 - t)}` : `T0 + ${fmtSpan(t - t0)}`);
  const events: { at: number; what: string }[] = [
    ...(e.fireTimes ?? []).map((at, i) => ({ at, what: i === 0 && t0 !== undefined && at < t0 ? "warm" : "refresh" })),
    ...(e.verifyAt !== undefined ? [{ at: e.verifyAt, what: "verify (and re-warm the stragglers)" }] : []),
    ...(t0 !== undefined ? [{ at: t0, what: "T0" }] : []),
  ].sort((a, b) => a.at - b.at);
  const shown = events.length > 24 ? [...events.slice(0, 12), ...events.slice(-12)] : events;
  const r = e.readiness;
  return html`<section><h2>Timeline</h2>
${t0 !== undefined ? html`<p><b class="countdown">${t0 >= o.now ? `T0 in ${fmtSpan(t0 - o.now)}` : `T0 was ${fmtSpan(o.now - t0)} ago`}</b> <span class="muted">(${fmtTime(t0)})</span></p>` : ""}
<ol class="timeline">${shown.map((ev) => html`<li class="${ev.at < o.now ? "past" : ""} ${ev.what === "T0" ? "t0" : ""}">${fmtTime(ev.at)} <span class="muted">${rel(ev.at)}</span> ${ev.what}${ev.at < o.now ? " ✓" : html` <span class="muted">(${fmtIn(ev.at, o.now)})</span>`}</li>`)}</ol>
${events.length > shown.length ? html`<p class="muted">${events.length - shown.length} refreshes not shown.</p>` : ""}
</section>
<section id="readiness"><h2>Last verify</h2>${
    r
      ? html`${readinessTable(r.before, r.runId !== null ? "Before the re-warm" : "Verify")}${r.after ? readinessTable(r.after, "After the re-warm") : ""}${r.runId !== null ? html`<p>Re-warm run: <a href="/console/runs/${encodeURIComponent(r.runId)}">${r.runId}</a></p>` : ""}`
      : html`<p class="muted">Not verified yet.</p>`
  }</section>`;
}

export function fleetLive(o: { nodes: (ListedNode & { metrics: NodeMetrics | null; skusPerS: number | null })[]; now: number }): Html {
  const absent = o.nodes.filter((n) => n.state === "absent");
  const taking = o.nodes.filter((n) => n.state !== "absent");
  const row = (n: (typeof o.nodes)[number]) => html`<tr data-node="${n.name}" data-state="${n.state}">
<td><b>${n.name}</b></td>
<td><span class="state-${n.state}">${n.state}</span>${n.state === "absent" ? html` <span class="chip">node_absent</span>` : ""}${n.error ? html` <span class="chip">${n.error}</span>` : ""}</td>
<td>${n.lastSeen !== null && n.source === "announced" ? fmtSpan(o.now - n.lastSeen) : html`<span class="muted">—</span>`}</td>
<td>${n.region}</td>
<td><code>${n.rules}</code></td>
<td>${n.metrics?.hitRatio != null ? pct(n.metrics.hitRatio * 100) : html`<span class="muted">—</span>`}</td>
<td>${n.metrics ? html`<span class="state-${n.metrics.breaker}">${n.metrics.breaker}</span>` : html`<span class="muted">—</span>`}</td>
<td>${n.skusPerS !== null ? n.skusPerS.toFixed(0) : html`<span class="muted">—</span>`}</td>
<td>${n.source}</td><td>${n.url}</td></tr>`;
  const table = (id: string, rows: typeof o.nodes) =>
    html`<div class="table-wrap"><table id="${id}"><thead><tr><th>node</th><th>state</th><th>heartbeat age</th><th>region</th><th>rules</th><th>hit ratio</th><th>breaker</th><th>recent SKUs/s</th><th>source</th><th>URL</th></tr></thead><tbody>${rows.map(row)}</tbody></table></div>`;
  return html`<section><h2>Nodes taking batches (${taking.length})</h2>${taking.length === 0 ? html`<p class="muted">None.</p>` : table("nodes", taking)}</section>
<section><h2>Absent: stopped heartbeating (${absent.length})</h2>${absent.length === 0 ? html`<p class="muted">None.</p>` : html`<p class="muted">Their batches fail at once as <code>node_absent</code>.</p>${table("absent-nodes", absent)}`}</section>`;
}

export function addNodeForm(): Html {
  return html`<section><h2>Add a registry node</h2>
<form hx-post="/console/nodes" hx-target="#node-result" method="post" action="/console/nodes" id="add-node"><div class="row">
<label>Name <input name="name" required pattern="[a-z0-9][a-z0-9\\-]{0,62}" title="lowercase letters, digits and dashes (1-63)" placeholder="edge-west-2"></label>
<label>URL <input name="url" type="url" required pattern="https?://.+" placeholder="https://edge-west-2.example.com"></label>
<label>Region <input name="region" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" title="a region name like cn-east" placeholder="us-west"></label>
<button type="submit">Add</button></div>
<p class="muted">Its URL must match the config's <code>nodeUrlAllow</code>; it gets the fleet's token with every batch.</p>
</form>
<h2>Remove a registry node</h2>
<form hx-post="/console/nodes/remove" hx-target="#node-result" hx-confirm="Remove this node from the registry? (A node that announces itself comes back with its next heartbeat.)" method="post" action="/console/nodes/remove" id="remove-node"><div class="row">
<label>Name <input name="name" required pattern="[a-z0-9][a-z0-9\\-]{0,62}" title="a registry node's name, as the table shows it"></label>
<button type="submit" class="danger">Remove</button></div></form>
<div id="node-result" aria-live="polite"></div></section>`;
}

export function purgeView(p: PurgeReport, now: number): Html {
  return html`<section><div class="table-wrap"><table><tbody>
<tr><th>what</th><td class="wrap">${describePurge(p)}</td></tr>
<tr><th>by</th><td>${describeWho(p.by)}</td></tr>
<tr><th>when</th><td>${fmtTime(p.createdAt)} <span class="muted">(${fmtIn(p.createdAt, now)})</span></td></tr>
<tr><th>result</th><td class="${p.ok ? "ok" : "bad"}">${p.confirmed} of ${p.results.length} nodes confirmed, ${p.purged} aggregates purged${p.pending > 0 ? `, ${p.pending} pending (sent again until they confirm)` : ""}</td></tr>
</tbody></table></div></section>
<section><h2>Per node</h2><div class="table-wrap"><table><thead><tr><th>node</th><th>region</th><th>status</th><th>purged</th><th>attempts</th><th>last try</th><th>why not</th></tr></thead><tbody>${p.results.map(
    (n) => html`<tr data-node="${n.name}"><td>${n.name}</td><td>${n.region}</td><td class="${n.status === "purged" ? "ok" : "bad"}">${n.status}${n.replayed ? " (replayed)" : ""}</td><td>${n.purged ?? ""}</td><td>${n.attempts}</td><td>${fmtIn(n.at, now)}</td><td class="wrap">${n.code ?? ""}${n.message ? html` <span class="muted">${n.message}</span>` : ""}</td></tr>`,
  )}</tbody></table></div></section>`;
}

export function hotLive(o: { key: string; skus: { sku: string; reads: number }[]; collected: { name: string; skus: number; error?: string }[] | null }): Html {
  return html`<section><h2>Hottest SKUs in <code>${o.key}</code> (${o.skus.length})</h2>
${o.collected ? html`<p>${o.collected.map((n) => html`<span class="chip ${n.error ? "" : "grey"}">${n.name}: ${n.error ? `not collected: ${n.error}` : `${n.skus} SKUs`}</span>`)}</p>` : ""}
${
  o.skus.length === 0
    ? html`<p class="muted" id="no-hot">Nothing collected yet: collect the nodes' most-read SKUs first.</p>`
    : html`<div class="table-wrap"><table id="hot"><thead><tr><th>#</th><th>SKU</th><th>reads (all nodes)</th></tr></thead><tbody>${o.skus.map((s, i) => html`<tr><td>${i + 1}</td><td>${s.sku}</td><td>${s.reads}</td></tr>`)}</tbody></table></div>`
}</section>`;
}

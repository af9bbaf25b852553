/**
 * The operator console in a real browser (headless Chromium) against a real
 * scheduler (engine + workers + the ops API over HTTP), its real Redis and two
 * real self-hosted edge nodes, plus a node where nothing listens.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { ServerType } from "@hono/node-server";
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opsApp, seen } from "./openapi-answers"; // the ops API, its answers checked against its OpenAPI document
import type { Engine } from "../../prewarm-scheduler/runs/engine";
import { until, useStack } from "./scheduler/stack";
import { consoleConfig, launch, OPS_TOKEN, REGISTRY_TOKEN, serve, signIn } from "./console/browser";

const suite = useStack(430);
/** What the run tests warm; the campaign's 30 SKUs are past them, so its cold node is cold. */
const runSkus = () => suite.stack.skus.slice(0, 400);
let browser: Browser;
let engine: Engine;
let server: ServerType;
let base: string;

beforeAll(async () => {
  browser = await launch();
}, 60_000);
afterAll(async () => {
  server?.close();
  await browser?.close();
});

/** A fresh engine and ops API per test (useStack closes the engines after each). */
async function start(overrides: Parameters<typeof consoleConfig>[1] = {}): Promise<void> {
  server?.close();
  engine = suite.engine(await consoleConfig(suite.stack, overrides));
  ({ server, url: base } = await serve(engine));
}

const bearer = { Authorization: `Bearer ${OPS_TOKEN}` };
const api = (path: string, init: RequestInit = {}) => fetch(`${base}${path}`, { ...init, headers: { ...bearer, "Content-Type": "application/json", ...(init.headers ?? {}) } });

async function newPage(): Promise<Page> {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.setDefaultTimeout(20_000);
  page.on("dialog", (d) => void d.accept());
  return page;
}

/** A value put on the page's window: still there means the page was not reloaded. */
const mark = (page: Page) => page.evaluate(() => ((window as unknown as { __mark: number }).__mark = 42));
const marked = (page: Page) => page.evaluate(() => (window as unknown as { __mark?: number }).__mark === 42);

async function submitPlan(page: Page, plan: unknown): Promise<void> {
  await page.$eval("#start-run textarea", (t, v) => {
    (t as HTMLTextAreaElement).value = v;
    t.dispatchEvent(new Event("input", { bubbles: true }));
  }, JSON.stringify(plan));
  await page.click("#start-run button[type=submit]");
}

describe("the console", () => {
  it("shows no page without a session, only the sign-in; the bearer API works as before", async () => {
    await start();
    for (const path of ["/", "/console/fleet", "/console/runs/x", "/console/hot", "/console/campaigns/x", "/console/nope"]) {
      const res = await fetch(`${base}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location"), path).toMatch(/^\/console\/signin\?next=/);
    }
    const post = await fetch(`${base}/console/nodes`, { method: "POST", body: new URLSearchParams({ name: "x", url: "http://x", region: "r" }) });
    expect(post.status).toBe(401);
    expect((await fetch(`${base}/v1/runs`)).status).toBe(401);
    expect((await api("/v1/runs")).status).toBe(200);
    const page = await newPage();
    await page.goto(`${base}/console/fleet`);
    expect(new URL(page.url()).pathname).toBe("/console/signin");
    expect(await page.$("#token")).not.toBeNull();
    await page.browserContext().close();
  });

  it("signs in with the ops token into a session cookie (HttpOnly, SameSite=Strict, expiring; not in the URL), refuses a wrong token, and signs out", async () => {
    await start();
    const page = await newPage();
    await signIn(page, base, "not-the-token");
    expect(await page.$eval("[role=alert]", (e) => e.textContent)).toBe("That is not the ops token.");
    await signIn(page, base);
    expect(new URL(page.url()).pathname).toBe("/");
    expect(await page.$eval("h1", (e) => e.textContent)).toBe("Now");
    const cookies = await page.browserContext().cookies();
    expect(cookies).toHaveLength(1);
    const c = cookies[0]!;
    expect({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure }).toEqual({ name: "prewarm_console", httpOnly: true, sameSite: "Strict", secure: false });
    expect(c.expires - Date.now() / 1000).toBeGreaterThan(7 * 3600);
    expect(page.url()).not.toContain(OPS_TOKEN);
    expect(await page.content()).not.toContain(OPS_TOKEN);
    expect(await page.evaluate(() => document.cookie)).toBe(""); // HttpOnly: no script reads it
    // Sign out: the session ends server-side, so the old cookie opens nothing.
    await Promise.all([page.waitForNavigation(), page.click("#signout")]);
    expect(new URL(page.url()).pathname).toBe("/console/signin");
    const old = await fetch(`${base}/`, { redirect: "manual", headers: { Cookie: `prewarm_console=${c.value}` } });
    expect(old.status).toBe(303);
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe("/console/signin");
    await page.browserContext().close();
  });

  it("starts a run and shows every node's progress reach 100 % without a reload", async () => {
    // Paced so the bars can be seen moving: 400 SKUs at 200 SKUs/s per node, about 2 s.
    await start({ maxSkusPerSecondPerNode: 200, batchSize: 20 });
    const page = await newPage();
    await signIn(page, base);
    await page.waitForFunction(() => "htmx" in window);
    await mark(page);
    await submitPlan(page, { name: "console-run", skus: { list: runSkus() }, targets: { nodes: ["edge-east", "edge-north"] }, ttl: 300, schedule: "once" });
    const runId = await page.waitForSelector("[data-run-started]").then((h) => h!.evaluate((e) => e.getAttribute("data-run-started")));
    expect(runId).toMatch(/^console-run-/);
    const seen = new Set<string>();
    const bars = () => page.$$eval(`.run[data-run="${runId}"] .node`, (ns) => ns.map((n) => `${n.getAttribute("data-node")} ${n.getAttribute("data-warmed")}/${n.getAttribute("data-planned")} ${n.querySelector(".pct")?.textContent}`));
    const last = await until(
      async () => {
        const v = await bars();
        v.forEach((x) => seen.add(x));
        return v;
      },
      (v) => v.length === 2 && v.every((x) => x.endsWith(" 400/400 100.0 %")),
      30_000,
    );
    expect(last).toEqual(["edge-east 400/400 100.0 %", "edge-north 400/400 100.0 %"]);
    // It was seen on its way, not only at the end.
    expect([...seen].some((x) => !x.includes(" 400/400 ") && !x.includes("/0 "))).toBe(true);
    await page.waitForSelector(`.run[data-run="${runId}"][data-status="done"]`);
    expect(await marked(page)).toBe(true);
    await page.browserContext().close();
  });

  it("watches a run live on its page: the bars move from below 100 % to 100 % with no reload", async () => {
    // Slow enough to be seen: 400 SKUs at 200 SKUs/s per node, about 2 s.
    await start({ maxSkusPerSecondPerNode: 200, batchSize: 20 });
    const page = await newPage();
    await signIn(page, base);
    const res = await api("/v1/runs", { method: "POST", body: JSON.stringify({ plan: { name: "slow-run", skus: { list: runSkus() }, targets: { nodes: ["edge-east", "edge-north"] }, schedule: "once" } }) });
    const { runId } = (await res.json()) as { runId: string };
    await page.goto(`${base}/console/runs/${runId}`);
    await mark(page);
    const seen = new Set<string>();
    await until(
      async () => {
        const v = await page.$$eval(".run .node", (ns) => ns.map((n) => `${n.getAttribute("data-node")}:${n.getAttribute("data-warmed")}/${n.getAttribute("data-planned")}`));
        v.forEach((x) => seen.add(x));
        return v;
      },
      (v) => v.length === 2 && v.every((x) => x.endsWith(":400/400")),
      30_000,
    );
    const partial = [...seen].filter((x) => !x.endsWith(":400/400") && !x.endsWith("/0"));
    expect(partial.length).toBeGreaterThan(0);
    expect(await marked(page)).toBe(true);
    await page.browserContext().close();
  });

  it("shows a dead node's failures by code on the run's page, paged", async () => {
    await start({ batchSize: 5 }); // a failed batch keeps 5 failed SKUs as samples: 24 batches, 120 samples
    const page = await newPage();
    await signIn(page, base);
    await submitPlan(page, { name: "with-dead", skus: { list: suite.stack.skus.slice(0, 120) }, targets: { nodes: ["edge-east", "edge-dead"] }, schedule: "once" });
    const runId = await page.waitForSelector("[data-run-started]").then((h) => h!.evaluate((e) => e.getAttribute("data-run-started")));
    await page.goto(`${base}/console/runs/${runId}`);
    await page.waitForFunction(() => document.querySelector("#run-status")?.textContent?.startsWith("failed") === true, { timeout: 30_000 });
    const dead = await page.$eval('.run .node[data-node="edge-dead"]', (n) => ({ failed: n.getAttribute("data-failed"), codes: Array.from(n.querySelectorAll(".chip")).map((c) => c.textContent) }));
    expect(dead).toEqual({ failed: "120", codes: ["node_unreachable: 120"] });
    // The failed SKUs, by code, 50 a page (the page is rendered once: reload for the list).
    await page.goto(`${base}/console/runs/${runId}?code=node_unreachable`);
    expect(await page.$$eval("#failures tbody tr", (rs) => rs.length)).toBe(50);
    expect(await page.$eval("#failures .pager", (e) => e.textContent)).toContain("page 1 of 3");
    await page.goto(`${base}/console/runs/${runId}?code=node_unreachable&page=3`);
    expect(await page.$$eval("#failures tbody tr", (rs) => rs.map((r) => r.lastElementChild?.textContent))).toEqual(Array(20).fill("node_unreachable"));
    await page.browserContext().close();
  });

  it("verifies a campaign and shows a cold node as not ready; re-warms the stragglers after a confirmation", async () => {
    await start();
    const skus = suite.stack.skus.slice(400, 430);
    const t0 = new Date(Date.now() + 3_600_000).toISOString();
    const plan = { name: "sale-day", skus: { list: skus }, targets: { nodes: ["edge-east", "edge-north"] }, ttl: 7200, schedule: { campaign: { t0, lead: "50m", refreshEvery: "30m", until: "10m", verifyBefore: "20m" } } };
    expect((await api("/v1/schedules", { method: "POST", body: JSON.stringify({ plan }) })).status).toBe(201);
    // Listed with its T0 (what the Now page counts down to), an answer held to the document like every other.
    const listed = (await (await api("/v1/schedules")).json()) as { schedules: { plan: string; t0?: number }[] };
    expect(listed.schedules.find((s) => s.plan === "sale-day")?.t0).toBe(Date.parse(t0));
    // Warm north only: east stays cold.
    const r = (await (await api("/v1/runs", { method: "POST", body: JSON.stringify({ plan: { ...plan, name: "sale-day", targets: { nodes: ["edge-north"] }, schedule: "once" } }) })).json()) as { runId: string };
    await until(async () => ((await (await api(`/v1/runs/${r.runId}`)).json()) as { status: string }).status, (s) => s !== "running", 20_000);
    const page = await newPage();
    await signIn(page, base);
    await page.goto(`${base}/`);
    await page.waitForSelector('#schedules tr[data-plan="sale-day"] .countdown');
    expect(await page.$eval('#schedules tr[data-plan="sale-day"] .countdown', (e) => e.textContent)).toMatch(/^T0 in (59m|1h)/);
    await page.click('#schedules a[href="/console/campaigns/sale-day"]');
    await page.waitForSelector("#verify-now");
    await mark(page);
    expect(await page.$eval("#readiness", (e) => e.textContent)).toContain("Not verified yet.");
    await page.click("#verify-now");
    await page.waitForSelector("#campaign-result .notice, #campaign-result .alert");
    expect(await page.$eval("#campaign-result", (e) => e.textContent)).toMatch(/Verified: 50\.0 % ready, not met \(30 of 60 keys\)/);
    await page.waitForSelector('#readiness tr[data-node="edge-east"]');
    const rows = await page.$$eval("#readiness tbody tr", (rs) => rs.map((r) => Array.from(r.querySelectorAll("td")).map((td) => td.textContent?.replace(/\s+/g, " ").trim())));
    expect(rows).toEqual([
      ["edge-east", "0.0 % (0/30) not ready", "not_cached: 30"],
      ["edge-north", "100.0 % (30/30)", "none"],
    ]);
    // Re-warm: a confirmation (accepted by the page's dialog handler), a run on the straggling node only.
    await page.click("#rewarm");
    const rewarm = await page
      .waitForSelector("#campaign-result [data-run-started]")
      .then((h) => h!.evaluate((e) => e.getAttribute("data-run-started")))
      .catch(async (e: Error) => {
        throw new Error(`${e.message}: ${await page.$eval("#campaign-result", (x) => x.textContent)}`);
      });
    const report = await until(async () => (await (await api(`/v1/runs/${rewarm}`)).json()) as { status: string; nodes: { name: string }[] }, (x) => x.status !== "running", 20_000);
    expect(report.nodes.map((n) => n.name)).toEqual(["edge-east"]);
    await page.click("#verify-now");
    await page.waitForFunction(() => document.querySelector("#campaign-result")?.textContent?.includes("100.0 % ready") === true).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${await page.$eval("#campaign-result", (x) => x.textContent)} ${await page.$eval("#readiness", (x) => x.textContent)} ${JSON.stringify(report)}`);
    });
    await page.waitForFunction(() => document.querySelectorAll("#readiness .not-ready").length === 0);
    expect(await marked(page)).toBe(true);
    // The page's verify and re-warm asked the ops API in process; those answers were checked too.
    expect([...seen]).toEqual(expect.arrayContaining(["POST http://console.internal/v1/verify", "POST http://console.internal/v1/runs"]));
    await page.browserContext().close();
  });

  it("shows a node vanish from the fleet's live nodes when it stops heartbeating; two operators see each other's adds and removes", async () => {
    await start();
    const url = suite.stack.edges[1]!.node.url;
    const announce = () => fetch(`${base}/v1/nodes/announce`, { method: "POST", headers: { Authorization: `Bearer ${REGISTRY_TOKEN}`, "Content-Type": "application/json" }, body: JSON.stringify({ name: "edge-beat", url, region: "cn-north" }) });
    expect((await announce()).status).toBe(200);
    let beating = true;
    const beat = (async () => {
      while (beating) {
        await announce();
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    const a = await newPage();
    const b = await newPage();
    await signIn(a, base);
    await signIn(b, base);
    await a.goto(`${base}/console/fleet`);
    await b.goto(`${base}/console/fleet`);
    await a.waitForSelector('#nodes tr[data-node="edge-beat"]');
    await mark(a);
    await mark(b);
    const row = await a.$eval('#nodes tr[data-node="edge-east"]', (r) => Array.from(r.querySelectorAll("td")).map((td) => td.textContent?.trim()));
    expect([row[0], row[1], row[3], row[8], row[9]]).toEqual(["edge-east", "live", "cn-east", "config", suite.stack.edges[0]!.node.url]);
    expect(row[4]).toMatch(/^[0-9a-f]{12}$/); // rules version
    expect(row[6]).toBe("closed"); // the regional breaker, from its /metrics
    expect(await a.$eval('#nodes tr[data-node="edge-dead"]', (r) => r.textContent)).toContain("node_unreachable");
    beating = false;
    await beat;
    await a.waitForSelector('#absent-nodes tr[data-node="edge-beat"]', { timeout: 15_000 });
    expect(await a.$('#nodes tr[data-node="edge-beat"]')).toBeNull();
    expect(await a.$eval('#absent-nodes tr[data-node="edge-beat"]', (r) => r.textContent)).toContain("node_absent");

    // Bad input: the API's own error text, as it is.
    await a.type('#add-node input[name="name"]', "edge-hand");
    await a.type('#add-node input[name="url"]', "http://10.1.2.3:9999");
    await a.type('#add-node input[name="region"]', "cn-west");
    await a.click('#add-node button[type="submit"]');
    await a.waitForSelector("#node-result .alert");
    expect(await a.$eval("#node-result .alert", (e) => e.textContent)).toBe("node is invalid:url: not allowed by the config's nodeUrlAllow (the fleet's token is only sent to the URLs the operator allows)");
    // A node the allow-list takes: added by A, seen by B without a reload; removed by B, gone from A's page.
    await a.$eval('#add-node input[name="url"]', (i) => ((i as HTMLInputElement).value = ""));
    await a.type('#add-node input[name="url"]', url);
    await a.click('#add-node button[type="submit"]');
    await a.waitForFunction(() => document.querySelector("#node-result")?.textContent?.includes("Added edge-hand") === true).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${await a.$eval("#node-result", (x) => x.textContent)}`);
    });
    await b.waitForSelector('#nodes tr[data-node="edge-hand"]');
    await b.type('#remove-node input[name="name"]', "edge-hand");
    await b.click('#remove-node button[type="submit"]');
    await b.waitForFunction(() => document.querySelector("#node-result")?.textContent?.includes("Removed edge-hand") === true).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${await b.$eval("#node-result", (x) => x.textContent)}`);
    });
    await a.waitForFunction(() => document.querySelector('#nodes tr[data-node="edge-hand"]') === null);
    // Removed meanwhile: the second remove says so.
    const again = await a.evaluate(async () => {
      const csrf = (JSON.parse(document.body.getAttribute("hx-headers") ?? "{}") as Record<string, string>)["X-CSRF-Token"]!;
      const r = await fetch("/console/nodes/remove", { method: "POST", headers: { "X-CSRF-Token": csrf, "HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded" }, body: "name=edge-hand" });
      return r.text();
    });
    expect(again).toContain("no registry node edge-hand");
    expect(await marked(a)).toBe(true);
    expect(await marked(b)).toBe(true);
    await a.browserContext().close();
    await b.browserContext().close();
  });

  it("shows a plan's errors field by field, and checks the JSON before sending", async () => {
    await start();
    const page = await newPage();
    await signIn(page, base);
    await submitPlan(page, { name: "Bad Name", skus: { list: [] }, schedule: "once", deadline: "soon" });
    await page.waitForSelector("#start-run-result .alert");
    const alert = await page.$eval("#start-run-result .alert", (e) => ({ message: e.querySelector("b")?.textContent, details: Array.from(e.querySelectorAll("li")).map((l) => l.textContent) }));
    expect(alert.message).toBe("plan is invalid:");
    expect(alert.details).toEqual(expect.arrayContaining([expect.stringMatching(/^name: must be lowercase/), expect.stringMatching(/^skus\.list: must list at least one SKU/), expect.stringMatching(/^deadline: /)]));
    // Not JSON: the browser refuses to send it (nothing reaches the scheduler).
    await page.$eval("#start-run-result", (e) => (e.innerHTML = ""));
    await page.$eval("#start-run textarea", (t) => {
      (t as HTMLTextAreaElement).value = "{name: ";
      t.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.click("#start-run button[type=submit]");
    expect(await page.$eval("#start-run textarea", (t) => (t as HTMLTextAreaElement).validationMessage)).toMatch(/^not JSON/);
    await new Promise((r) => setTimeout(r, 500));
    expect(await page.$eval("#start-run-result", (e) => e.innerHTML)).toBe("");
    await page.browserContext().close();
  });

  it("refuses an action without the session's CSRF token, and a cross-site form post", async () => {
    await start();
    const page = await newPage();
    await signIn(page, base);
    const body = new URLSearchParams({ name: "edge-csrf", url: suite.stack.edges[1]!.node.url, region: "cn-north" }).toString();
    // Same origin, with the session cookie, but no token.
    const r = await page.evaluate(async (b) => {
      const res = await fetch("/console/nodes", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: b });
      return { status: res.status, body: await res.text() };
    }, body);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ error: { code: "csrf", message: "missing or wrong CSRF token: reload the page and try again" } });
    // Another origin's page posting a form to the console (same site: 127.0.0.1 on another port, so the cookie is sent).
    const evil = http.createServer((_, res) => {
      res.setHeader("Content-Type", "text/html");
      res.end(`<form id="f" method="post" action="${base}/console/nodes"><input name="name" value="edge-evil"><input name="url" value="${suite.stack.edges[1]!.node.url}"><input name="region" value="cn-north"><input name="_csrf" value="guess"></form><script>document.getElementById("f").submit()</script>`);
    });
    await new Promise<void>((res) => evil.listen(0, "127.0.0.1", res));
    const resp = new Promise<number>((res) => page.on("response", (x) => x.url().endsWith("/console/nodes") && res(x.status())));
    await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
    expect(await resp).toBe(403);
    evil.close();
    const nodes = (await (await api("/v1/nodes")).json()) as { nodes: { name: string }[] };
    expect(nodes.nodes.map((n) => n.name)).not.toContain("edge-csrf");
    expect(nodes.nodes.map((n) => n.name)).not.toContain("edge-evil");
    await page.browserContext().close();
  });

  it("collects the fleet's hottest SKUs and turns them into a run", async () => {
    await start({ nodes: suite.stack.edges.map((e) => ({ name: e.name, url: e.node.url, region: e.region })) });
    const hot = suite.stack.skus.slice(0, 3);
    for (const [i, sku] of hot.entries()) for (let k = 0; k < 5 - i; k++) await (await fetch(`${suite.stack.edges[0]!.node.url}/v1/skus/${sku}`)).body?.cancel();
    const page = await newPage();
    await signIn(page, base);
    await page.goto(`${base}/console/hot`);
    await page.waitForSelector("#no-hot");
    await page.click("#collect-hot");
    await page.waitForSelector("#hot tbody tr");
    const top = await page.$$eval("#hot tbody tr", (rs) => rs.slice(0, 3).map((r) => r.children[1]?.textContent));
    expect(top).toEqual(hot);
    // The page's action and its live part asked the ops API in process, and those answers were checked too.
    expect([...seen]).toEqual(expect.arrayContaining(["POST http://console.internal/v1/hot", "GET http://console.internal/v1/hot"]));
    await page.click("#warm-hot");
    const runId = await page.waitForSelector("#hot-result [data-run-started]").then((h) => h!.evaluate((e) => e.getAttribute("data-run-started")));
    const report = await until(async () => (await (await api(`/v1/runs/${runId}`)).json()) as { status: string; totalSkus: number }, (x) => x.status !== "running", 20_000);
    expect(report.status).toBe("done");
    expect(report.totalSkus).toBeGreaterThanOrEqual(3);
    // The API the page uses writes only keys under hot:, never the scheduler's own.
    const bad = await api("/v1/hot", { method: "POST", body: JSON.stringify({ key: `${engine.cfg.prefix}:runs`, top: 10 }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { details: string[] } }).error.details).toEqual(["key: must be hot: followed by 1-100 letters, digits, colons, dots, dashes or underscores"]);
    await page.browserContext().close();
  });

  it("shows both APIs' OpenAPI documents on the API page (every operation by tag, its auth, parameters, headers and error codes) and serves the edge node's document, behind the sign-in", async () => {
    await start();
    for (const path of ["/console/api", "/console/openapi/edge-node.json"]) {
      const res = await fetch(`${base}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(303);
      expect(res.headers.get("location"), path).toBe(`/console/signin?next=${encodeURIComponent(path)}`);
    }
    // The documents as the APIs serve them: the ops API's at its /openapi.json, a node's at its own.
    type Doc = { paths: Record<string, Record<string, { tags: string[]; responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: { properties?: { error?: { properties: { code: { enum: string[] } } } } } }> }> }>> };
    const opsDoc = (await (await fetch(`${base}/openapi.json`)).json()) as Doc;
    const edgeDoc = (await (await fetch(`${suite.stack.edges[0]!.node.url}/openapi.json`)).json()) as Doc;
    const operations = (d: Doc) => Object.entries(d.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => `${method} ${path} [${op.tags[0]}]`)).sort();

    const page = await newPage();
    const violations: string[] = [];
    page.on("console", (m) => void (m.text().includes("Content Security Policy") && violations.push(m.text())));
    await signIn(page, base);
    await Promise.all([page.waitForNavigation(), page.click('header nav a[href="/console/api"]')]);
    expect(await page.$eval("h1", (e) => e.textContent)).toBe("API reference");
    // Every operation of each document, under the heading of its tag.
    const listed = (doc: string) =>
      page.$$eval(`[data-doc="${doc}"] details.op`, (ds) =>
        ds
          .map((d) => {
            let h = d.previousElementSibling;
            while (h !== null && h.tagName !== "H3") h = h.previousElementSibling;
            return `${d.getAttribute("data-method")} ${d.getAttribute("data-path")} [${h?.textContent}]`;
          })
          .sort(),
      );
    expect(await listed("ops")).toEqual(operations(opsDoc));
    expect(await listed("edge")).toEqual(operations(edgeDoc));
    expect(operations(opsDoc).length + operations(edgeDoc).length).toBeGreaterThan(20);

    // The read, opened: its answers' headers as the document has them, X-Rules-Version with its pattern; 503's Retry-After.
    const read = '[data-doc="edge"] details.op[data-method="get"][data-path="/v1/skus/{sku}"]';
    expect(await page.$eval(`${read} li.response[data-status="200"] [data-header="X-Rules-Version"]`, (e) => e.checkVisibility())).toBe(false); // closed until clicked
    await page.click(`${read} > summary`);
    const headers = (status: string) => page.$$eval(`${read} li.response[data-status="${status}"] [data-header]`, (ls) => ls.map((l) => l.getAttribute("data-header")));
    expect(await headers("200")).toEqual(Object.keys(edgeDoc.paths["/v1/skus/{sku}"]!["get"]!.responses["200"]!.headers!));
    expect(await headers("503")).toEqual(["Retry-After"]);
    const rules = await page.$eval(`${read} li.response[data-status="200"] [data-header="X-Rules-Version"]`, (e) => ({ visible: e.checkVisibility(), text: e.textContent }));
    expect(rules.visible).toBe(true);
    expect(rules.text).toContain("^[0-9a-f]{12}$");
    expect(rules.text).toContain("the rules version that computed it");
    // Its parameters: name, where, required.
    expect(await page.$$eval(`${read} table.params tbody tr`, (rs) => rs.map((r) => Array.from(r.children).slice(0, 3).map((td) => td.textContent).join(" ")))).toEqual([
      "sku path yes",
      "region query no",
      "Cache-Control header no",
      "If-None-Match header no",
    ]);

    // Starting a run: the bearer token, the plan as its body, and 401 unauthorized among its errors.
    const runs = '[data-doc="ops"] details.op[data-method="post"][data-path="/v1/runs"]';
    await page.click(`${runs} > summary`);
    expect(await page.$eval(`${runs} .meta`, (e) => e.textContent)).toContain("bearer opsToken");
    const codes = (status: string) => page.$$eval(`${runs} li.response[data-status="${status}"] code.code`, (cs) => cs.map((c) => c.textContent));
    expect(await codes("401")).toEqual(["unauthorized"]);
    expect(await codes("400")).toEqual(opsDoc.paths["/v1/runs"]!["post"]!.responses["400"]!.content!["application/json"]!.schema.properties!.error!.properties.code.enum);
    expect(await page.$eval(`${runs} li.response[data-status="401"] code.code`, (e) => e.checkVisibility())).toBe(true);
    expect(await page.$eval(`${runs} .op-body`, (e) => e.textContent)).toMatch(/Request body.*PlanBody: object\s*plan/s);
    // A query parameter's type and limits: GET /v1/hot's top.
    expect(await page.$eval('[data-doc="ops"] details.op[data-method="get"][data-path="/v1/hot"] tr[data-param="top"]', (r) => r.textContent?.replace(/\s+/g, " "))).toContain("integer 1..1000 · default 100");

    // Open all (the console's own script; no inline script under the CSP).
    await page.click('button[data-details="open"]');
    expect(await page.$$eval("details.op", (ds) => ds.every((d) => (d as HTMLDetailsElement).open))).toBe(true);
    // The downloads: the ops API's own, and the node's document served by the console (the session's cookie, no node asked).
    expect(await page.$eval("#ops-download", (a) => a.getAttribute("href"))).toBe("/openapi.json");
    const served = await page.evaluate(async () => {
      const r = await fetch(document.querySelector("#edge-download")!.getAttribute("href")!);
      return { status: r.status, type: r.headers.get("content-type"), body: (await r.json()) as unknown };
    });
    expect(served).toEqual({ status: 200, type: "application/json", body: edgeDoc });
    expect(violations).toEqual([]);
    await page.browserContext().close();
  });

  it("is open without an ops token (--no-auth), as the API is", async () => {
    await start({ opsToken: "" });
    const res = await opsApp(engine).request("/");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("<h1>Now</h1>");
  });
});

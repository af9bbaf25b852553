/**
 * The console's API page: both OpenAPI documents (the ops API's, built by
 * `opsDocument()`, and the edge node's, docs/openapi/edge-node.json) rendered
 * on the server from the documents themselves, so the page cannot say other
 * than what the APIs are checked against. Every operation, grouped by tag:
 * method, path, summary, description, auth, parameters, request body, and each
 * answer by status with its headers, error codes and body schema (a compact
 * nested field list; a named schema is a link to its entry at the end of its
 * document's section).
 *
 * No renderer library: Redoc, Scalar and swagger-ui need inline styles or
 * scripts (the console's CSP forbids both) and weigh megabytes; the
 * documents use a small part of JSON Schema (type, properties, required,
 * items, anyOf, enum, const, limits, patterns, $ref to components), which a
 * few templates show. Each operation is a `<details>` (no script needed; a
 * link to its anchor opens it).
 */
import { html } from "hono/html";
import type { Html } from "./views";

/** The parts of an OpenAPI 3.1 document the page reads (the documents are plain JSON). */
export interface ApiDocument {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, { type?: string; scheme?: string; description?: string }> };
}

interface Parameter {
  name: string;
  in: string;
  description?: string;
  required?: boolean;
  schema?: unknown;
}

interface Response {
  description: string;
  headers?: Record<string, { description?: string; required?: boolean; schema?: unknown }>;
  content?: Record<string, { schema?: unknown }>;
}

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { required?: boolean; description?: string; content?: Record<string, { schema?: unknown }> };
  responses: Record<string, Response>;
}

/** One document on the page: `id` prefixes its anchors; `download` is where the console or the API serves it. */
export interface ReferencedDocument {
  id: string;
  name: string;
  doc: ApiDocument;
  download: { href: string; file: string };
  servedAt: string;
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/** Every operation of a document, in its order: what the page lists (and what its test compares with). */
export function operationsOf(doc: ApiDocument): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).filter(([m]) => METHODS.includes(m)).map(([method, op]) => ({ method, path, op })));
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Text with the documents' `code` spans shown as code (everything escaped). */
const prose = (text: string | undefined): Html => html`${(text ?? "").split("`").map((part, i) => (i % 2 === 1 ? html`<code>${part}</code>` : part))}`;

const anchor = (s: string): string => s.replace(/[^A-Za-z0-9_-]+/g, "-");

interface Ctx {
  docId: string;
  schemas: Record<string, unknown>;
}

const REF = "#/components/schemas/";

function refLink(ref: string, ctx: Ctx): Html {
  const name = ref.startsWith(REF) ? ref.slice(REF.length) : ref;
  return html`<a href="#${ctx.docId}-schema-${anchor(name)}" class="ref"><code>${name}</code></a>`;
}

const literal = (v: unknown): string => JSON.stringify(v) ?? String(v);

/** A range as `a..b`, `≥ a`, `≤ b`, or nothing (the safe-integer bounds zod gives every integer are no limit to show). */
function range(lo: unknown, hi: unknown, unit = ""): string {
  const l = typeof lo === "number" && lo !== Number.MIN_SAFE_INTEGER ? lo : null;
  const h = typeof hi === "number" && hi !== Number.MAX_SAFE_INTEGER ? hi : null;
  if (l !== null && h !== null) return l === h ? `exactly ${l}${unit}` : `${l}..${h}${unit}`;
  if (l !== null) return `≥ ${l}${unit}`;
  if (h !== null) return `≤ ${h}${unit}`;
  return "";
}

/** The limits a schema sets, as short notes. */
function limits(s: Obj): string[] {
  const out: string[] = [];
  const len = range(s["minLength"], s["maxLength"], " chars");
  if (len) out.push(len);
  const num = range(s["minimum"], s["maximum"]);
  if (num) out.push(num);
  if (typeof s["exclusiveMinimum"] === "number") out.push(`> ${s["exclusiveMinimum"]}`);
  if (typeof s["exclusiveMaximum"] === "number") out.push(`< ${s["exclusiveMaximum"]}`);
  const items = range(s["minItems"], s["maxItems"], " items");
  if (items) out.push(items);
  if (typeof s["format"] === "string") out.push(s["format"]);
  return out;
}

/** A variant simple enough to show on one line (no fields of its own, no nested choice). */
function simple(s: unknown): boolean {
  if (!isObj(s)) return true;
  if (isObj(s["properties"]) || Array.isArray(s["anyOf"]) || Array.isArray(s["oneOf"]) || isObj(s["additionalProperties"])) return false;
  return s["items"] === undefined || simple(s["items"]);
}

/**
 * A schema as one line (its type, allowed values, limits, pattern, default)
 * followed, for an object, an array of objects or a choice of shapes, by the
 * nested list of its fields or variants.
 */
export function schemaView(s: unknown, ctx: Ctx, depth = 0): Html {
  if (!isObj(s) || Object.keys(s).length === 0) return html`<span class="ty">any</span>`;
  if (depth > 12) return html`<span class="muted">…</span>`;
  if (typeof s["$ref"] === "string") {
    // A body's own schema is shown where it is, under its name; a named schema inside one is a link.
    const named = s["$ref"].startsWith(REF) ? ctx.schemas[s["$ref"].slice(REF.length)] : undefined;
    return depth === 0 && named !== undefined ? html`${refLink(s["$ref"], ctx)}: ${schemaView(named, ctx, depth + 1)}` : refLink(s["$ref"], ctx);
  }
  const notes: Html[] = [];
  const lim = limits(s);
  if (typeof s["pattern"] === "string") notes.push(html`<span class="pat" title="pattern"><code>${s["pattern"]}</code></span>`);
  for (const l of lim) notes.push(html`<span class="lim">${l}</span>`);
  if (s["default"] !== undefined) notes.push(html`<span class="muted">default <code>${literal(s["default"])}</code></span>`);
  const tail = notes.length > 0 ? html` ${notes.map((n, i) => (i === 0 ? n : html` · ${n}`))}` : "";

  const choice = Array.isArray(s["anyOf"]) ? s["anyOf"] : Array.isArray(s["oneOf"]) ? s["oneOf"] : null;
  if (choice !== null) {
    if (choice.every(simple)) return html`${choice.map((v, i) => html`${i > 0 ? html` <span class="or">|</span> ` : ""}${schemaView(v, ctx, depth + 1)}`)}${tail}`;
    return html`<span class="ty">one of</span>${tail}<ol class="variants">${choice.map((v) => html`<li>${schemaView(v, ctx, depth + 1)}</li>`)}</ol>`;
  }
  if (s["const"] !== undefined) return html`<code class="val">${literal(s["const"])}</code>${tail}`;
  const type = Array.isArray(s["type"]) ? s["type"].join(" | ") : typeof s["type"] === "string" ? s["type"] : "";
  if (Array.isArray(s["enum"])) {
    return html`<span class="ty">${type || "value"}</span>: ${s["enum"].map((v, i) => html`${i > 0 ? html` <span class="or">|</span> ` : ""}<code class="val">${literal(v)}</code>`)}${tail}`;
  }
  if (type === "array") {
    return html`<span class="ty">array</span>${tail} of ${schemaView(s["items"], ctx, depth + 1)}`;
  }
  const props = isObj(s["properties"]) ? s["properties"] : null;
  const extra = s["additionalProperties"];
  if (type === "object" || props !== null) {
    const required = new Set(Array.isArray(s["required"]) ? s["required"].filter((r): r is string => typeof r === "string") : []);
    const keys = isObj(s["propertyNames"]) ? schemaView(s["propertyNames"], ctx, depth + 1) : html`<span class="ty">string</span>`;
    const rows: Html[] = [
      ...Object.entries(props ?? {}).map(
        ([name, p]) => html`<li><code class="f">${name}</code>${required.has(name) ? "" : html` <span class="opt">optional</span>`} ${schemaView(p, ctx, depth + 1)}</li>`,
      ),
      ...(isObj(extra) ? [html`<li><span class="muted">any key</span> (${keys}) → ${schemaView(extra, ctx, depth + 1)}</li>`] : []),
    ];
    const open = props === null && !isObj(extra) && extra !== false;
    return html`<span class="ty">object</span>${open ? html` <span class="muted">(any fields)</span>` : ""}${tail}${rows.length > 0 ? html`<ul class="fields">${rows}</ul>` : ""}`;
  }
  return html`<span class="ty">${type || "any"}</span>${tail}`;
}

/**
 * An answer whose body is the APIs' error body (`{"error": {"code", ...}}`,
 * nothing beside `error`): its codes and the error's fields (`?`: optional), or null.
 */
export function errorBody(schema: unknown): { codes: string[]; fields: string[] } | null {
  if (!isObj(schema) || !isObj(schema["properties"])) return null;
  const props = schema["properties"];
  if (Object.keys(props).join() !== "error") return null;
  const err = props["error"];
  if (!isObj(err) || !isObj(err["properties"])) return null;
  const code = err["properties"]["code"];
  if (!isObj(code)) return null;
  const codes = Array.isArray(code["enum"]) ? code["enum"].filter((c): c is string => typeof c === "string") : typeof code["const"] === "string" ? [code["const"]] : null;
  const required = Array.isArray(err["required"]) ? err["required"] : [];
  return codes === null ? null : { codes, fields: Object.keys(err["properties"]).map((f) => (required.includes(f) ? f : `${f}?`)) };
}

function auth(op: Operation, doc: ApiDocument): Html {
  const schemes = (op.security ?? []).flatMap((req) => Object.keys(req));
  if (schemes.length === 0) return html`<span class="auth none">no token</span>`;
  return html`${schemes.map((name, i) => {
    const s = doc.components?.securitySchemes?.[name];
    return html`${i > 0 ? " or " : ""}<span class="auth">${s?.scheme === "bearer" ? "bearer " : ""}<code>${name}</code></span>${s?.description ? html` <span class="muted">(${s.description})</span>` : ""}`;
  })}`;
}

function parameters(params: Parameter[], ctx: Ctx): Html {
  return html`<h4>Parameters</h4><div class="table-wrap"><table class="params"><thead><tr><th>name</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr></thead><tbody>${params.map(
    (p) => html`<tr data-param="${p.name}"><td><code>${p.name}</code></td><td>${p.in}</td><td>${p.required ? "yes" : html`<span class="muted">no</span>`}</td><td class="wrap">${schemaView(p.schema, ctx)}</td><td class="wrap">${prose(p.description)}</td></tr>`,
  )}</tbody></table></div>`;
}

function bodies(content: Record<string, { schema?: unknown }> | undefined, ctx: Ctx): Html {
  return html`${Object.entries(content ?? {}).map(([type, c]) => html`<div class="body"><span class="ctype">${type}</span> ${schemaView(c.schema, ctx)}</div>`)}`;
}

function response(status: string, r: Response, ctx: Ctx): Html {
  const headers = Object.entries(r.headers ?? {});
  const content = Object.entries(r.content ?? {});
  const err = content.length === 1 ? errorBody(content[0]![1].schema) : null;
  const cls = status.startsWith("2") ? "s2" : status.startsWith("3") ? "s3" : status.startsWith("4") ? "s4" : "s5";
  return html`<li class="response" data-status="${status}"><div><b class="status ${cls}">${status}</b> ${prose(r.description)}</div>
${
  headers.length > 0
    ? html`<ul class="headers">${headers.map(
        ([name, h]) => html`<li data-header="${name}"><code class="f">${name}</code>${h.required ? "" : html` <span class="opt">optional</span>`} ${schemaView(h.schema, ctx)}${h.description ? html` <span class="desc">${prose(h.description)}</span>` : ""}</li>`,
      )}</ul>`
    : ""
}
${
  err !== null
    ? html`<div class="body"><span class="ctype">${content[0]![0]}</span> <span class="ty">error</span> <code>{"error": {${err.fields.join(", ")}}}</code>, <code>code</code>: ${err.codes.map((c) => html`<code class="code" data-code="${c}">${c}</code> `)}</div>`
    : bodies(r.content, ctx)
}
</li>`;
}

function operation(ref: ReferencedDocument, o: { method: string; path: string; op: Operation }): Html {
  const ctx: Ctx = { docId: ref.id, schemas: ref.doc.components?.schemas ?? {} };
  const op = o.op;
  const id = `${ref.id}-${anchor(op.operationId ?? `${o.method}-${o.path}`)}`;
  return html`<details class="op" id="${id}" data-method="${o.method}" data-path="${o.path}">
<summary><span class="method m-${o.method}">${o.method.toUpperCase()}</span> <code class="path">${o.path}</code> <span class="sum">${prose(op.summary)}</span></summary>
<div class="op-body">
${op.description ? html`<p>${prose(op.description)}</p>` : ""}
<p class="meta"><span class="muted">auth:</span> ${auth(op, ref.doc)}${op.operationId ? html` · <span class="muted">operationId</span> <code>${op.operationId}</code>` : ""} · <a href="#${id}">link</a></p>
${op.parameters && op.parameters.length > 0 ? parameters(op.parameters, ctx) : ""}
${
  op.requestBody
    ? html`<h4>Request body${op.requestBody.required ? "" : html` <span class="muted">(optional)</span>`}</h4>${op.requestBody.description ? html`<p class="muted">${prose(op.requestBody.description)}</p>` : ""}${bodies(op.requestBody.content, ctx)}`
    : ""
}
<h4>Responses</h4>
<ul class="responses">${Object.entries(op.responses).map(([status, r]) => response(status, r, ctx))}</ul>
</div>
</details>`;
}

function documentSection(ref: ReferencedDocument): Html {
  const ops = operationsOf(ref.doc);
  const tags: string[] = [];
  for (const o of ops) for (const t of o.op.tags?.length ? o.op.tags.slice(0, 1) : ["other"]) if (!tags.includes(t)) tags.push(t);
  const tagOf = (o: (typeof ops)[number]) => o.op.tags?.[0] ?? "other";
  const schemas = Object.entries(ref.doc.components?.schemas ?? {});
  const ctx: Ctx = { docId: ref.id, schemas: ref.doc.components?.schemas ?? {} };
  return html`<section class="apidoc" id="${ref.id}" data-doc="${ref.id}">
<h2>${ref.name} <span class="muted">· ${ref.doc.info.title} ${ref.doc.info.version}</span></h2>
<p>${prose(ref.doc.info.description)}</p>
<p class="row"><a href="${ref.download.href}" download="${ref.download.file}" class="download" id="${ref.id}-download">Download ${ref.download.file}</a> <span class="muted">Served at ${prose(ref.servedAt)} · ${ops.length} operations</span></p>
<p class="tags">${tags.map((t) => html`<a href="#${ref.id}-tag-${anchor(t)}">${t} (${ops.filter((o) => tagOf(o) === t).length})</a> `)}${schemas.length > 0 ? html`<a href="#${ref.id}-schemas">schemas (${schemas.length})</a>` : ""}</p>
${tags.map((t) => html`<h3 id="${ref.id}-tag-${anchor(t)}">${t}</h3>${ops.filter((o) => tagOf(o) === t).map((o) => operation(ref, o))}`)}
${
  schemas.length > 0
    ? html`<h3 id="${ref.id}-schemas">Schemas</h3>${schemas.map(([name, s]) => html`<div class="schema" id="${ref.id}-schema-${anchor(name)}"><h4><code>${name}</code></h4>${schemaView(s, ctx)}</div>`)}`
    : ""
}
</section>`;
}

/** The API page's body: a line on where the documents come from, then each document. */
export function apiReference(docs: ReferencedDocument[]): Html {
  return html`<section><p>The two HTTP APIs as their OpenAPI 3.1 documents describe them. The documents are generated from the schemas the code validates with, and every answer in the tests is checked against them. Click an operation to open it.</p>
<p class="row">${docs.map((d) => html`<a href="#${d.id}">${d.name}</a> `)}<button type="button" class="secondary" data-details="open">Open all</button><button type="button" class="secondary" data-details="close">Close all</button></p></section>
${docs.map(documentSection)}`;
}

/**
 * Checks an HTTP answer against an OpenAPI 3.1 document (the ones
 * `npm run openapi` writes): the operation is found by method and path
 * template; its status must be documented, each documented header present
 * when required and matching its schema, the body valid against its schema
 * (draft 2020-12; answers are documented with `additionalProperties: false`,
 * so an undocumented field fails). An answer to a method and path that no
 * operation documents fails too, unless it is the API's own "no such route"
 * error (`CheckOptions.unrouted`) or its path is not the API's (`outside`:
 * the ops API's console pages). Runtime-agnostic (Node and workerd):
 * @cfworker/json-schema interprets schemas, where ajv would compile them
 * with `new Function`, which workerd forbids.
 */
import { Validator, type Schema } from "@cfworker/json-schema";

type Json = Record<string, unknown>;

interface Operation {
  id: string;
  method: string;
  template: string;
  re: RegExp;
  responses: Record<string, Json>;
}

export interface Answer {
  method: string;
  /** The URL asked (its path and query are used). */
  url: string;
  status: number;
  headers: Headers;
  /** The body as text; empty when none. */
  body: string;
}

export interface CheckOptions {
  /**
   * The answers an API gives to a method and path it has no route for: status -> the error
   * codes it may carry (in the error body). Any other answer to an undocumented operation
   * fails the check: a route the document lacks, a method the API answers that it does not
   * document (e.g. HEAD), a catch-all answering something else than its error.
   */
  unrouted: Record<number, readonly string[]>;
  /** Paths served on the API's origin that are not the API (not checked): e.g. the ops API's console pages. */
  outside?: RegExp;
}

/** The edge node's answer to a route it does not have (worker/http/router.ts). */
export const EDGE_CHECK: CheckOptions = { unrouted: { 404: ["route_not_found"], 405: ["method_not_allowed"] } };
/**
 * The ops API's (prewarm-scheduler/ops/ops-api.ts): 404 not_found, or 401 first when the token
 * is missing or wrong (the bearer check comes before routing); the console's pages (`/`,
 * `/console/...`) and the BullMQ board (`/admin/queues`) are HTML on the same origin, not the API.
 */
export const OPS_CHECK: CheckOptions = { unrouted: { 401: ["unauthorized"], 404: ["not_found"] }, outside: /^\/(?:$|console(?:\/|$)|admin\/queues(?:\/|$))/ };

export class ApiDocument {
  readonly title: string;
  private readonly ops: Operation[] = [];
  private readonly validators = new Map<unknown, Validator>();

  constructor(
    private readonly doc: Json,
    private readonly options: CheckOptions,
  ) {
    this.title = String((doc["info"] as Json)["title"]);
    for (const [template, methods] of Object.entries(doc["paths"] as Record<string, Record<string, Json>>)) {
      const re = new RegExp(`^${template.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+")}$`);
      for (const [method, op] of Object.entries(methods)) {
        this.ops.push({ id: String(op["operationId"]), method: method.toUpperCase(), template, re, responses: op["responses"] as Record<string, Json> });
      }
    }
  }

  /** The documented operation of `method path`, if any. */
  operation(method: string, path: string): Operation | undefined {
    return this.ops.find((o) => o.method === method.toUpperCase() && o.re.test(path));
  }

  /** Every documented operation: method, path template, operationId. */
  operations(): { method: string; template: string; id: string; statuses: number[] }[] {
    return this.ops.map((o) => ({ method: o.method, template: o.template, id: o.id, statuses: Object.keys(o.responses).map(Number) }));
  }

  private validator(schema: Json): Validator {
    let v = this.validators.get(schema);
    if (!v) {
      v = new Validator({ ...schema, components: this.doc["components"] } as Schema, "2020-12", false);
      this.validators.set(schema, v);
    }
    return v;
  }

  private problems(schema: Json, value: unknown, where: string): string[] {
    const r = this.validator(schema).validate(value);
    if (r.valid) return [];
    // The leaves say what is wrong; the "a subschema had errors" above them say only where.
    const leaves = r.errors.filter((e) => !/subschema|had errors|did not match/i.test(e.error));
    return (leaves.length > 0 ? leaves : r.errors).slice(0, 5).map((e) => `${where}${e.instanceLocation.slice(1)}: ${e.error}`);
  }

  /** The error body the API answers a route it does not have with, or not. */
  private unrouted(a: Answer): boolean {
    const codes = this.options.unrouted[a.status];
    if (!codes || !(a.headers.get("Content-Type") ?? "").startsWith("application/json")) return false;
    try {
      const body = JSON.parse(a.body) as unknown;
      if (typeof body !== "object" || body === null || Object.keys(body).join() !== "error") return false;
      const e = (body as { error: unknown }).error;
      if (typeof e !== "object" || e === null || Object.keys(e).some((k) => k !== "code" && k !== "message")) return false;
      const { code, message } = e as { code?: unknown; message?: unknown };
      return typeof code === "string" && codes.includes(code) && typeof message === "string";
    } catch {
      return false;
    }
  }

  /** What is wrong with `a` by the document (empty: nothing). */
  check(a: Answer): string[] {
    const u = new URL(a.url, "http://x");
    if (this.options.outside?.test(u.pathname)) return [];
    const op = this.operation(a.method, u.pathname);
    if (!op) {
      if (this.unrouted(a)) return [];
      return [`${a.method} ${u.pathname} answered ${a.status}, but the document has no operation ${a.method} ${u.pathname}: an undocumented route or method (or not the API's answer to a route it lacks); body ${a.body.slice(0, 200)}`];
    }
    const name = `${a.method} ${u.pathname} (${op.id}) answered ${a.status}`;
    const res = op.responses[String(a.status)];
    if (!res) return [`${name}: the status is not documented (documented: ${Object.keys(op.responses).join(", ")}); body ${a.body.slice(0, 300)}`];
    const out: string[] = [];
    for (const [header, spec] of Object.entries((res["headers"] ?? {}) as Record<string, Json>)) {
      const value = a.headers.get(header);
      if (value === null) {
        if (spec["required"] === true) out.push(`${name}: header ${header} is missing`);
        continue;
      }
      out.push(...this.problems(spec["schema"] as Json, value, `${name}: header ${header}`));
    }
    const content = res["content"] as Record<string, { schema: Json }> | undefined;
    if (!content) {
      if (a.body !== "") out.push(`${name}: documented without a body, got ${a.body.slice(0, 200)}`);
      return out;
    }
    const type = (a.headers.get("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
    const media = content[type];
    if (!media) return [...out, `${name}: Content-Type ${JSON.stringify(type)} is not documented (${Object.keys(content).join(", ")})`];
    let value: unknown = a.body;
    if (type === "application/json") {
      try {
        value = JSON.parse(a.body);
      } catch {
        return [...out, `${name}: the body is not JSON: ${a.body.slice(0, 200)}`];
      }
    }
    return [...out, ...this.problems(media.schema, value, `${name}: body`)];
  }
}

/**
 * Checks an HTTP answer against an OpenAPI 3.1 document (the ones
 * `npm run openapi` writes): the operation is found by method and path
 * template; its status must be documented, each documented header present
 * when required and matching its schema, the body valid against its schema
 * (draft 2020-12; answers are documented with `additionalProperties: false`,
 * so an undocumented field fails). Runtime-agnostic (Node and workerd):
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

export class ApiDocument {
  readonly title: string;
  private readonly ops: Operation[] = [];
  private readonly validators = new Map<unknown, Validator>();

  constructor(private readonly doc: Json) {
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

  /** What is wrong with `a` by the document (empty: nothing; also when no operation documents it). */
  check(a: Answer): string[] {
    const u = new URL(a.url, "http://x");
    const op = this.operation(a.method, u.pathname);
    if (!op) return [];
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

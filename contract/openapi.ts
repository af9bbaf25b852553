/**
 * A small OpenAPI 3.1 document builder over zod 4's own JSON Schema output
 * (`toJSONSchema`, draft 2020-12: OpenAPI 3.1's dialect). Both HTTP APIs
 * describe their operations here with the zod schemas their code validates
 * with (`worker/http/openapi.ts`, `prewarm-scheduler/ops/openapi.ts`);
 * `npm run openapi` writes the documents, which each service serves at
 * `GET /openapi.json`. Requests are shown as the schema reads them (`io:
 * "input"`: unknown fields allowed unless the schema is strict), answers as
 * the code writes them (`io: "output"`: an undocumented field is not allowed).
 *
 * Every error answer is `{"error": {"code", "message", "details"?}}` with the
 * codes the operation can answer at that status, so a code the document does
 * not name fails a check.
 */
import { toJSONSchema, type core } from "zod/mini";

export type Schema = core.$ZodType;
export type JsonSchema = Record<string, unknown>;

export interface HeaderSpec {
  schema: Schema;
  description: string;
  /** Sent with every answer of this status. */
  required?: boolean;
}

export interface ResponseSpec {
  description: string;
  /** The body's schema (JSON unless `contentType` says otherwise); none: no body. */
  schema?: Schema;
  /** Default `application/json`. */
  contentType?: string;
  headers?: Record<string, HeaderSpec>;
}

export interface ParamSpec {
  name: string;
  in: "path" | "query" | "header";
  schema: Schema;
  description: string;
  required?: boolean;
}

export interface OperationSpec {
  method: "get" | "post" | "delete";
  /** OpenAPI's template: `/v1/skus/{sku}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** The bearer scheme it needs (a key of `DocumentSpec.security`), or none. */
  security?: string;
  params?: ParamSpec[];
  body?: { schema: Schema; contentTypes: string[]; description?: string };
  responses: Record<number, ResponseSpec>;
  /** The error codes it can answer, by status (their body is the error body). */
  errors: Record<number, { codes: readonly string[]; description: string; headers?: Record<string, HeaderSpec> }>;
}

export interface DocumentSpec {
  title: string;
  version: string;
  description: string;
  /** Bearer schemes by name, with what the token is. */
  security: Record<string, string>;
  operations: OperationSpec[];
  /**
   * Named schemas: wherever one appears in an operation (as the code reads
   * it, `input`, or writes it, `output`), the document refers to it
   * (`#/components/schemas/<name>`) instead of repeating it.
   */
  components?: Record<string, { schema: Schema; io: "input" | "output" }>;
}

/** A zod schema as a JSON Schema inside the document (no `$schema`: the document's dialect is 2020-12). */
export function jsonSchemaOf(schema: Schema, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

const errorBody = (codes: readonly string[]): JsonSchema => ({
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string", enum: [...codes] }, message: { type: "string" }, details: { type: "array", items: { type: "string" } } },
      required: ["code", "message"],
      additionalProperties: false,
    },
  },
  required: ["error"],
  additionalProperties: false,
});

function headersOf(headers: Record<string, HeaderSpec> | undefined): Record<string, unknown> | undefined {
  if (!headers) return undefined;
  return Object.fromEntries(Object.entries(headers).map(([name, h]) => [name, { description: h.description, required: h.required === true, schema: jsonSchemaOf(h.schema, "output") }]));
}

/** `node` with every subtree equal to a named schema replaced by a reference to it. */
function withRefs(node: unknown, named: Map<string, string>, self?: string): unknown {
  if (typeof node !== "object" || node === null) return node;
  const ref = named.get(JSON.stringify(node));
  if (ref !== undefined && ref !== self) return { $ref: `#/components/schemas/${ref}` };
  if (Array.isArray(node)) return node.map((n) => withRefs(n, named));
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, withRefs(v, named)]));
}

/** The OpenAPI 3.1 document of `spec`, as plain JSON (keys in a stable order, so the written file only changes with the API). */
export function buildDocument(spec: DocumentSpec): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of spec.operations) {
    const responses: Record<string, unknown> = {};
    const statuses = [...new Set([...Object.keys(op.responses), ...Object.keys(op.errors)].map(Number))].sort((a, b) => a - b);
    for (const status of statuses) {
      const ok = op.responses[status];
      const err = op.errors[status];
      if (ok && err) throw new Error(`${op.operationId}: ${status} is both an answer and an error`);
      if (ok) {
        responses[String(status)] = {
          description: ok.description,
          ...(ok.headers ? { headers: headersOf(ok.headers) } : {}),
          ...(ok.schema ? { content: { [ok.contentType ?? "application/json"]: { schema: jsonSchemaOf(ok.schema, "output") } } } : {}),
        };
      } else if (err) {
        responses[String(status)] = {
          description: `${err.description} (${err.codes.join(", ")})`,
          ...(err.headers ? { headers: headersOf(err.headers) } : {}),
          content: { "application/json": { schema: errorBody(err.codes) } },
        };
      }
    }
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: op.tags,
      security: op.security ? [{ [op.security]: [] }] : [],
      ...(op.params
        ? { parameters: op.params.map((p) => ({ name: p.name, in: p.in, description: p.description, required: p.in === "path" || p.required === true, schema: jsonSchemaOf(p.schema, "input") })) }
        : {}),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              ...(op.body.description ? { description: op.body.description } : {}),
              content: Object.fromEntries(op.body.contentTypes.map((t) => [t, { schema: jsonSchemaOf(op.body!.schema, "input") }])),
            },
          }
        : {}),
      responses,
    };
  }
  const schemas = Object.entries(spec.components ?? {}).map(([name, c]) => [name, jsonSchemaOf(c.schema, c.io)] as const);
  const named = new Map(schemas.map(([name, js]) => [JSON.stringify(js), name]));
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: { title: spec.title, version: spec.version, description: spec.description, license: { name: "Apache-2.0", identifier: "Apache-2.0" } },
    paths: withRefs(paths, named),
    components: {
      ...(schemas.length > 0 ? { schemas: Object.fromEntries(schemas.map(([name, js]) => [name, withRefs(js, named, name)])) } : {}),
      securitySchemes: Object.fromEntries(Object.entries(spec.security).map(([name, description]) => [name, { type: "http", scheme: "bearer", description }])),
    },
  };
}

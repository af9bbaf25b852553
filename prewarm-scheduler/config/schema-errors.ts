/**
 * Turns a zod validation failure into one message per bad field, each
 * pointing at the field by its path in the file (`schedule.campaign.t0: …`),
 * so ops can fix a plan without reading a stack trace.
 */
import type { z } from "zod";

export class InvalidFileError extends Error {
  override readonly name = "InvalidFileError";
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file} is invalid:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export function isInvalidFileError(e: unknown): e is InvalidFileError {
  return e instanceof InvalidFileError;
}

export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const where = issue.path.length === 0 ? "(top level)" : issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
    return `${where}: ${issue.message}`;
  });
}

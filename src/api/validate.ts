import type { Context } from "hono";
import type { z } from "zod";
import { CairnError } from "../errors.ts";

export interface FieldProblem {
  path: string;
  message: string;
}

function problems(error: z.ZodError, prefix: string): FieldProblem[] {
  return error.issues.flatMap((issue) => {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => ({ path: base ? `${base}.${k}` : k, message: "unknown field" }));
    }
    return [{ path: base || prefix, message: issue.message }];
  });
}

export function invalid(fields: FieldProblem[]): CairnError {
  return new CairnError(
    "VALIDATION_FAILED",
    "Request is invalid: " + fields.map((f) => `${f.path}: ${f.message}`).join("; "),
    { details: fields },
  );
}

export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: "body" | "query" | "path",
): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(problems(result.error, where === "body" ? "" : where));
  return result.data;
}

/** The JSON body, or {} when there is none; malformed JSON is a 400 naming the problem. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim() !== "") {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw invalid([{ path: "body", message: `not valid JSON (${(error as Error).message})` }]);
    }
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid([{ path: "body", message: "must be a JSON object" }]);
  }
  return parseWith(schema, value, "body");
}

export function queryOf<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  return parseWith(schema, c.req.query(), "query");
}

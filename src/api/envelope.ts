import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorCode } from "../errors.ts";
import { redact } from "../redact.ts";

/** {"status":"success","message":...,"data":...} (SPEC section 6). */
export function ok(
  c: Context,
  data: unknown,
  options: { message?: string; status?: ContentfulStatusCode } = {},
) {
  return c.json(
    { status: "success", message: options.message ?? "OK", data: scrub(data) },
    options.status ?? 200,
  );
}

export function errorBody(code: ErrorCode, message: string, details: unknown = null) {
  return { status: "error", message: redact(message), code, details: scrub(details) };
}

/** Secrets never leave through a response body, whatever put them there. */
export function scrub(value: unknown): unknown {
  if (value === null || value === undefined) return value ?? null;
  const text = JSON.stringify(value);
  const clean = redact(text);
  return clean === text ? value : JSON.parse(clean);
}

import { redact } from "./redact.ts";

/** Stable error codes: scripts and the HTTP API rely on them, so never rename one. */
export type ErrorCode =
  | "UNAUTHORIZED"
  | "VALIDATION_FAILED"
  | "CONFIG_INVALID"
  | "INVALID_KEY"
  | "UNKNOWN_CLIENT"
  | "BACKUP_NOT_FOUND"
  | "JOB_NOT_FOUND"
  | "SCHEDULE_NOT_FOUND"
  | "JOB_NOT_CANCELLABLE"
  | "JOB_NOT_REQUEUEABLE"
  | "SCHEDULE_CONFIG_OWNED"
  | "PAYLOAD_TOO_LARGE"
  | "NOT_FOUND"
  | "TARGET_NOT_EMPTY"
  | "SOURCE_UNAVAILABLE"
  | "SOURCE_REFUSED"
  | "TOOL_MISSING"
  | "TOOL_INCOMPATIBLE"
  | "REPOSITORY_UNAVAILABLE"
  | "REPOSITORY_REFUSED"
  | "DISK_FULL"
  | "CHECKSUM_MISMATCH"
  | "VERIFY_FAILED"
  | "CHECK_FOUND_PROBLEMS"
  | "STORE_LOCKED"
  | "STORE_CORRUPT"
  | "STORE_UNAVAILABLE"
  | "STORE_NOT_EMPTY"
  | "LISTEN_FAILED"
  | "METHOD_NOT_ALLOWED"
  | "CANCELLED"
  | "IDENTITY_MISSING"
  // A no-overwrite publish found its key taken (repository putIfAbsent): a job's error.
  | "OBJECT_EXISTS"
  | "INTERNAL";

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHORIZED: 401,
  VALIDATION_FAILED: 400,
  INVALID_KEY: 400,
  UNKNOWN_CLIENT: 400,
  BACKUP_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  SCHEDULE_NOT_FOUND: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  JOB_NOT_CANCELLABLE: 409,
  JOB_NOT_REQUEUEABLE: 409,
  SCHEDULE_CONFIG_OWNED: 409,
  // A usage mistake, refused before it becomes a job (restore preflight): 400.
  TARGET_NOT_EMPTY: 400,
  // The request is sound; this host lacks the age identity to open the backup.
  IDENTITY_MISSING: 409,
  PAYLOAD_TOO_LARGE: 413,
};

/** An error a user can act on: a stable code, a sentence, optional structured details. */
export class CairnError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown } = {},
  ) {
    super(redact(message), { cause: options.cause });
    this.name = "CairnError";
    this.code = code;
    this.details = options.details ?? null;
  }
  get httpStatus(): number {
    return HTTP_STATUS[this.code] ?? 500;
  }
}

/**
 * A failure whose job still has a result worth keeping: a repository check that
 * found problems fails (so the dead-letter queue, notifications and metrics see it)
 * and its job's result is the report, listing every problem.
 */
export class FailureWithResult extends CairnError {
  readonly result: Record<string, unknown>;
  constructor(
    code: ErrorCode,
    message: string,
    result: Record<string, unknown>,
  ) {
    super(code, message);
    this.result = result;
  }
}

/** Every caught value goes through here, so callers only ever see an Error. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (typeof value === "string") return new Error(value);
  try {
    return new Error(JSON.stringify(value));
  } catch {
    return new Error(String(value));
  }
}

export function isCairnError(value: unknown, code?: ErrorCode): value is CairnError {
  return value instanceof CairnError && (code === undefined || value.code === code);
}

/** The message to store or print for any failure, with secrets removed. */
export function describeError(value: unknown): string {
  const err = toError(value);
  return redact(err.message || err.name);
}

import { CairnError, type ErrorCode } from "../errors.ts";

/**
 * What kind of failure an S3 error is, whichever client raised it: the AWS SDK
 * (repository, restore uploads: `name`, `$metadata.httpStatusCode`), `minio` (mirror
 * sources: an `S3Error` whose `code` is S3's error code, or minio's name for a bare
 * status: 403 AccessDenied, 404 NotFound; for 408, 429 and 5xx a plain Error naming
 * the status only), or the network (`code` ECONNREFUSED...). One mapping for the repository and the mirror source.
 */
export type S3Failure =
  | { kind: "aborted" }
  | { kind: "auth"; label: string }
  | { kind: "no-bucket" }
  | { kind: "not-found" }
  | { kind: "other"; detail: string; transient: boolean };

const AUTH =
  /^(InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|ExpiredToken|InvalidToken|AuthorizationHeaderMalformed|InvalidClientTokenId)$/;

/** Failures another try may not meet: throttling, server errors, a dropped connection. */
const TRANSIENT_CODES =
  /^(SlowDown|ServiceUnavailable|InternalError|RequestTimeout|RequestTimeTooSkewed|Throttling|ThrottlingException|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|UND_ERR_SOCKET)$/;

export function classifyS3(error: unknown): S3Failure {
  const e = error as Error & {
    Code?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: { code?: string };
  };
  const name = e?.name ?? "";
  // minio puts S3's error code in `code`, the SDK in `name` (and `Code`).
  const s3Code = name === "S3Error" ? e?.code ?? "" : e?.Code ?? "";
  const status = e?.$metadata?.httpStatusCode;
  if (name === "AbortError") return { kind: "aborted" };
  if (AUTH.test(name) || AUTH.test(s3Code) || status === 403) {
    // A HEAD reply has no body: the SDK then names the error "Unknown"; the status says more.
    const label = AUTH.test(s3Code)
      ? s3Code
      : name && name !== "Unknown" && name !== "S3Error"
      ? name
      : `HTTP ${status ?? 403}`;
    return { kind: "auth", label };
  }
  if (name === "NoSuchBucket" || s3Code === "NoSuchBucket") return { kind: "no-bucket" };
  if (
    name === "NoSuchKey" || name === "NotFound" || s3Code === "NoSuchKey" ||
    s3Code === "NotFound" || status === 404
  ) {
    return { kind: "not-found" };
  }
  // minio reads no body for 408, 429 and 5xx (its request.ts): only the status is known.
  const bare = /Retryable HTTP status: (\d{3})/.exec(e?.message ?? "");
  if (bare) return { kind: "other", detail: `HTTP ${bare[1]}`, transient: true };
  const code = e?.code ?? e?.cause?.code;
  const transient = TRANSIENT_CODES.test(s3Code || name) || TRANSIENT_CODES.test(code ?? "") ||
    (status !== undefined && status >= 500);
  return {
    kind: "other",
    detail: code === "ECONNREFUSED"
      ? "connection refused"
      : name === "S3Error" && s3Code && e?.message
      ? `${s3Code}: ${e.message}`
      : e?.message || name || String(error),
    transient,
  };
}

/** Which side of cairn the bucket is, for the error's code and advice. */
export type S3Role = "repository" | "source";

const CODES: Record<S3Role, { refused: ErrorCode; unavailable: ErrorCode; missing: ErrorCode }> = {
  repository: {
    refused: "REPOSITORY_REFUSED",
    unavailable: "REPOSITORY_UNAVAILABLE",
    missing: "BACKUP_NOT_FOUND",
  },
  source: {
    refused: "SOURCE_REFUSED",
    unavailable: "SOURCE_UNAVAILABLE",
    missing: "SOURCE_UNAVAILABLE",
  },
};

/**
 * An S3 failure as a CairnError an operator can act on: refused credentials and a
 * missing bucket are *_REFUSED (retrying cannot help), the rest *_UNAVAILABLE; an
 * abort is passed through, and so is a CairnError.
 */
export function s3CairnError(
  error: unknown,
  role: S3Role,
  action: string,
  where: string,
): Error {
  if (error instanceof CairnError) return error;
  const failure = classifyS3(error);
  const codes = CODES[role];
  switch (failure.kind) {
    case "aborted":
      return error as Error;
    case "auth":
      return new CairnError(
        codes.refused,
        role === "repository"
          ? `S3 refused the request while ${action} at ${where} (${failure.label}): check access_key_id, secret_access_key and the bucket policy`
          : `${where} refused the request while ${action} (${failure.label}): check access_key_id and secret_access_key`,
        { cause: error },
      );
    case "no-bucket":
      return new CairnError(
        codes.refused,
        role === "repository"
          ? `The bucket of ${where} does not exist: create it or fix repository.bucket`
          : `The bucket of ${where} does not exist`,
        { cause: error },
      );
    case "not-found":
      return new CairnError(
        codes.missing,
        role === "repository"
          ? `Not found in the repository while ${action}`
          : `Object not found while ${action} at ${where}`,
        { cause: error },
      );
    case "other":
      return new CairnError(
        codes.unavailable,
        role === "repository"
          ? `S3 failed while ${action} at ${where}: ${failure.detail}`
          : `${where} failed while ${action}: ${failure.detail}`,
        { cause: error },
      );
  }
}

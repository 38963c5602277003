/** What kind of failure an S3 SDK error is, for the repository and the mirror source alike. */
export type S3Failure =
  | { kind: "aborted" }
  | { kind: "auth"; label: string }
  | { kind: "no-bucket" }
  | { kind: "not-found" }
  | { kind: "other"; detail: string };

const AUTH =
  /^(InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|ExpiredToken|InvalidToken|AuthorizationHeaderMalformed|InvalidClientTokenId)$/;

export function classifyS3(error: unknown): S3Failure {
  const e = error as Error & {
    Code?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = e?.name ?? "";
  const status = e?.$metadata?.httpStatusCode;
  if (name === "AbortError") return { kind: "aborted" };
  if (AUTH.test(name) || AUTH.test(e?.Code ?? "") || status === 403) {
    // A HEAD reply has no body: the SDK then names the error "Unknown"; the status says more.
    return { kind: "auth", label: name && name !== "Unknown" ? name : `HTTP ${status}` };
  }
  if (name === "NoSuchBucket") return { kind: "no-bucket" };
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) return { kind: "not-found" };
  const code = e?.code ?? (e as { cause?: { code?: string } })?.cause?.code;
  return {
    kind: "other",
    detail: code === "ECONNREFUSED" ? "connection refused" : e?.message || name || String(error),
  };
}

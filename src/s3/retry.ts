import { retryDelayMs } from "../jobs/backoff.ts";
import { classifyS3 } from "./errors.ts";

/**
 * cairn's one S3 retry policy: 5 attempts in all, for failures another try may not
 * meet (throttling, 5xx, a dropped or refused connection: classifyS3's `transient`),
 * never for refused credentials, a missing bucket or object, or an abort. The AWS
 * SDK clients (repository, restore uploads) get the same number through
 * `maxAttempts` with its "standard" mode (its own backoff on the same classes:
 * its retries live inside each SDK call, where a streamed body can be replayed);
 * every `minio` call goes through withRetry.
 */
export const S3_ATTEMPTS = 5;
export const S3_RETRY_BASE_MS = 100;
export const S3_RETRY_MAX_MS = 5000;

export function retryableS3(error: unknown): boolean {
  const failure = classifyS3(error);
  return failure.kind === "other" && failure.transient;
}

/**
 * Runs `call` until it succeeds, fails for good, or used S3_ATTEMPTS; waits
 * retryDelayMs (doubling from S3_RETRY_BASE_MS, jittered) between attempts. Only for
 * calls that can be repeated as they are (no half-sent body).
 */
export async function withRetry<T>(
  call: () => Promise<T>,
  options: { signal?: AbortSignal; sleep?: (ms: number) => Promise<void> } = {},
): Promise<T> {
  const sleep = options.sleep ??
    ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 1;; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await call();
    } catch (error) {
      if (attempt >= S3_ATTEMPTS || !retryableS3(error) || options.signal?.aborted) throw error;
      await sleep(retryDelayMs(attempt, { baseMs: S3_RETRY_BASE_MS, maxMs: S3_RETRY_MAX_MS }));
    }
  }
}

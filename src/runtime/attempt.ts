import type { Progress } from "../jobs/types.ts";
import { CairnError, describeError, FailureWithResult, isCairnError, toError } from "../errors.ts";
import { retryDelayMs } from "../jobs/backoff.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { LeaseLostError } from "../store/store.ts";
import { executeJob } from "./execute.ts";
import { leaseMs, type Services } from "./services.ts";

/** Why a running job was stopped from outside, which decides how it is recorded. */
export type StopReason = "cancel" | "shutdown" | "lease-lost" | "stall";

export class JobStop extends Error {
  readonly reason: StopReason;
  constructor(reason: StopReason) {
    super(
      reason === "cancel"
        ? "Cancelled"
        : reason === "shutdown"
        ? "Stopped for shutdown"
        : reason === "stall"
        ? "Stalled"
        : "Lease lost",
    );
    this.name = "AbortError";
    this.reason = reason;
  }
}

/** Failures that another attempt cannot fix go straight to the dead-letter queue. */
const PERMANENT = new Set([
  "UNKNOWN_CLIENT",
  "INVALID_KEY",
  "BACKUP_NOT_FOUND",
  "TARGET_NOT_EMPTY",
  "VALIDATION_FAILED",
  "CHECKSUM_MISMATCH",
  "VERIFY_FAILED",
  "REPOSITORY_REFUSED",
  "SOURCE_REFUSED",
  "TOOL_MISSING",
  "TOOL_INCOMPATIBLE",
  "IDENTITY_MISSING",
  // The repository holds what it holds: checking again finds the same problems.
  "CHECK_FOUND_PROBLEMS",
]);

/** How long a stalled attempt gets to stop after its abort before it is abandoned. */
const STALL_GRACE_MS = 15_000;

export function isPermanent(error: unknown): boolean {
  return error instanceof CairnError && PERMANENT.has(error.code);
}

export interface AttemptOptions {
  /** Stops the attempt from outside (pool shutdown, CLI Ctrl-C, local cancel). */
  controller: AbortController;
  onProgress?: (job: Job, progress: Progress) => void;
  /** How often the lease is renewed and the cancel flag looked at. */
  heartbeatMs?: number;
  /** What runs the job; injected by benchmarks and tests, the real executor otherwise. */
  execute?: typeof executeJob;
}

/**
 * Runs one claimed attempt of a job to its end and records the outcome: completed,
 * retry scheduled, dead-lettered, cancelled, or released for shutdown. Never throws
 * for the job's own failure; the returned job says what happened.
 */
export async function runAttempt(
  services: Services,
  claimed: Job,
  options: AttemptOptions,
): Promise<Job> {
  const { store } = services;
  const token = claimed.lease_token!;
  const ttl = leaseMs(services.config);
  const controller = options.controller;
  const heartbeatMs = options.heartbeatMs ?? Math.max(100, Math.min(ttl / 3, 2000));
  let progress: { bytes_done: number; bytes_total: number | null; phase?: string } = {
    bytes_done: 0,
    bytes_total: null,
  };
  let progressDirty = false;
  let key = claimed.key;
  // The stall watchdog: progress that has not moved for this long aborts the attempt.
  const stallMs = stallTimeoutMs(services, claimed);
  let movedAt = Date.now();
  let abandonTimer: ReturnType<typeof setTimeout> | undefined;
  logger.info("Job started", {
    job_id: claimed.id,
    kind: claimed.kind,
    client: claimed.client_name,
    attempt: claimed.attempts,
    max_attempts: claimed.max_attempts,
  });

  // The lease is ours until (the last renewal sent) + TTL, by the store's count at
  // the latest. When renewals fail (a partition from the store, a store down), the job
  // stops a margin before that, so it never runs on while another node takes it over.
  const guard = new LeaseGuard(ttl, () => {
    if (controller.signal.aborted) return;
    logger.error("Job stopped: its lease could not be renewed and would expire", {
      job_id: claimed.id,
      kind: claimed.kind,
      lease_ttl_ms: ttl,
      margin_ms: leaseMarginMs(ttl),
    });
    controller.abort(new JobStop("lease-lost"));
  });
  const beat = async () => {
    if (Date.now() - movedAt > stallMs && !controller.signal.aborted) {
      controller.abort(new JobStop("stall"));
      return;
    }
    const sent = performance.now();
    try {
      const patch = progressDirty ? { progress: { ...progress } } : undefined;
      progressDirty = false;
      const job = await store.renew(claimed.id, token, ttl, patch);
      guard.renewed(sent);
      if (job.cancel_requested && !controller.signal.aborted) {
        controller.abort(new JobStop("cancel"));
      }
    } catch (error) {
      if (error instanceof LeaseLostError && !controller.signal.aborted) {
        controller.abort(new JobStop("lease-lost"));
      }
    }
  };
  const timer = setInterval(beat, heartbeatMs);

  const started = Date.now();
  let outcome: Job;
  try {
    const execute = options.execute ?? executeJob;
    const execution = execute(services, { ...claimed, key }, {
      signal: controller.signal,
      progress: (update) => {
        if (
          update.bytes_done !== progress.bytes_done ||
          (update.phase !== undefined && update.phase !== progress.phase)
        ) movedAt = Date.now();
        progress = {
          ...progress,
          ...update,
          bytes_done: update.bytes_done ?? progress.bytes_done,
          bytes_total: update.bytes_total !== undefined ? update.bytes_total : progress.bytes_total,
        };
        progressDirty = true;
        options.onProgress?.(claimed, progress);
      },
      setKey: async (k) => {
        await store.update(claimed.id, token, { key: k });
        key = k;
      },
      confirmLease: async () => {
        await store.renew(claimed.id, token, ttl);
      },
    });
    // A stalled engine may not honour the abort (a query blocked on a lock does not
    // look at the signal): after a grace period the attempt is recorded as stalled
    // anyway, and whatever it still holds is left to finish or fail on its own.
    const abandoned = new Promise<never>((_, reject) => {
      const onAbort = () => {
        const reason = controller.signal.reason;
        if (!(reason instanceof JobStop) || reason.reason !== "stall") return;
        abandonTimer = setTimeout(() => {
          logger.warn("A stalled attempt did not stop when aborted; recording it as stalled", {
            job_id: claimed.id,
            grace_ms: Math.min(STALL_GRACE_MS, stallMs),
          });
          reject(reason);
        }, Math.min(STALL_GRACE_MS, stallMs));
      };
      controller.signal.addEventListener("abort", onAbort, { once: true });
    });
    abandoned.catch(() => {});
    execution.catch(() => {});
    const result = await Promise.race([execution, abandoned]);
    // A backup that returned has written its manifest: it exists, so the job is
    // completed whatever was asked meanwhile (its status must agree with the repository).
    if (claimed.kind !== "backup") controller.signal.throwIfAborted();
    if (progressDirty) await store.update(claimed.id, token, { progress: { ...progress } });
    outcome = await store.complete(claimed.id, token, result);
    logger.info("Job completed", {
      job_id: claimed.id,
      kind: claimed.kind,
      client: claimed.client_name,
      key: outcome.key,
      duration_ms: Date.now() - started,
    });
  } catch (caught) {
    const stop = controller.signal.aborted ? controller.signal.reason : null;
    const error = stop instanceof JobStop && stop.reason === "stall"
      ? new Error(stallMessage(stallMs, progress.phase))
      : toError(caught);
    try {
      outcome = await recordFailure(services, claimed, token, error, stop);
    } catch (recordError) {
      if (recordError instanceof LeaseLostError) {
        logger.warn("Job lost its lease; another worker owns it now", { job_id: claimed.id });
        outcome = (await store.get(claimed.id)) ?? claimed;
      } else throw recordError;
    }
  } finally {
    clearInterval(timer);
    clearTimeout(abandonTimer);
    guard.stop();
  }
  return outcome;
}

/** The client's stall_timeout_minutes, else backup.stall_timeout_minutes, in ms. */
export function stallTimeoutMs(services: Services, job: Job): number {
  const { config } = services;
  const client = job.client_name !== null && Object.hasOwn(config.clients, job.client_name)
    ? config.clients[job.client_name]
    : undefined;
  return Math.round(
    (client?.stall_timeout_minutes ?? config.backup.stall_timeout_minutes) * 60_000,
  );
}

function stallMessage(stallMs: number, phase: string | undefined): string {
  return `Stalled: no progress for ${
    Number((stallMs / 60_000).toFixed(2))
  } minutes (stall_timeout_minutes), so the attempt was aborted` +
    `${phase ? ` during ${phase}` : ""}; ` +
    "a lock held on the source or an endpoint that stopped answering are the usual causes";
}

/**
 * How long before its lease would expire a job whose renewals fail is stopped (ms):
 * a fifth of the TTL, at least 1 s (time to kill its children), at most 30 s.
 */
export function leaseMarginMs(ttlMs: number): number {
  return Math.round(Math.max(1000, Math.min(ttlMs / 5, 30_000)));
}

/**
 * Calls `expire` when no renewal has succeeded for TTL - margin, measured on the
 * monotonic clock from when the last successful renewal was sent (its expiry in the
 * store is later than that: it was computed when the store received it). The first
 * lease counts from the guard's creation, just after the claim returned.
 */
export class LeaseGuard {
  readonly #ttlMs: number;
  readonly #expire: () => void;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #validFrom: number;

  constructor(ttlMs: number, expire: () => void, now = performance.now()) {
    this.#ttlMs = ttlMs;
    this.#expire = expire;
    this.#validFrom = now;
    this.#arm();
  }

  /** A renewal sent at `sentAt` (performance.now()) succeeded. */
  renewed(sentAt: number): void {
    if (this.#timer === null || sentAt <= this.#validFrom) return;
    this.#validFrom = sentAt;
    this.#arm();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    const due = this.#validFrom + this.#ttlMs - leaseMarginMs(this.#ttlMs);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#expire();
    }, Math.max(0, due - performance.now()));
  }
}

async function recordFailure(
  services: Services,
  job: Job,
  token: string,
  error: Error,
  stop: unknown,
): Promise<Job> {
  const { store, config } = services;
  if (stop instanceof JobStop && stop.reason === "cancel") {
    const out = await store.markCancelled(job.id, token);
    logger.info("Job cancelled", { job_id: job.id, kind: job.kind, client: job.client_name });
    return out;
  }
  if (stop instanceof JobStop && stop.reason === "shutdown") {
    const out = await store.release(job.id, token);
    logger.info("Job released for shutdown; it will run again on restart", {
      job_id: job.id,
      kind: job.kind,
    });
    return out;
  }
  if (stop instanceof JobStop && stop.reason === "lease-lost") throw new LeaseLostError(job.id);
  const stalled = stop instanceof JobStop && stop.reason === "stall";
  const message = stalled ? error.message : describeError(error);
  // A stall is worth another attempt (a lock released, an endpoint back), whatever it threw.
  const permanent = !stalled && isPermanent(error);
  const delay = retryDelayMs(job.attempts, { baseMs: config.backup.retry_backoff_ms });
  const out = await store.fail(job.id, token, message, {
    retryDelayMs: delay,
    permanent,
    ...(error instanceof FailureWithResult ? { result: error.result } : {}),
  });
  if (out.status === "failed") {
    logger.error("Job failed", {
      job_id: job.id,
      kind: job.kind,
      client: job.client_name,
      attempts: out.attempts,
      error: message,
      code: isCairnError(error) ? error.code : undefined,
      stack: isCairnError(error) ? undefined : error.stack,
    });
  } else {
    logger.warn("Job attempt failed; retry scheduled", {
      job_id: job.id,
      kind: job.kind,
      client: job.client_name,
      attempt: job.attempts,
      retry_in_ms: delay,
      error: message,
    });
  }
  return out;
}

import { CairnError } from "../errors.ts";
import { type Job, type NewJob, TERMINAL } from "./types.ts";

/**
 * The job state machine as pure functions: each takes a job and a clock and
 * returns the next job. Both stores apply these, so they cannot disagree.
 */

export function newJob(id: number, input: NewJob, now: number): Job {
  return {
    id,
    kind: input.kind,
    client_name: input.client_name,
    key: input.key ?? null,
    label: input.label ?? null,
    status: "pending",
    attempts: 0,
    max_attempts: Math.max(1, input.max_attempts),
    progress: null,
    error: null,
    schedule_id: input.schedule_id ?? null,
    params: input.params ?? {},
    result: null,
    created_at: now,
    started_at: null,
    finished_at: null,
    run_after: input.run_after ?? now,
    updated_at: now,
    lease_owner: null,
    lease_token: null,
    lease_expires_at: null,
    cancel_requested: false,
  };
}

export function isLeaseExpired(job: Job, now: number): boolean {
  return job.status === "running" && job.lease_expires_at !== null && job.lease_expires_at <= now;
}

/** A job a worker may take now: due and pending, or running under a dead owner's lease. */
export function isClaimable(job: Job, now: number): boolean {
  if (job.status === "pending") return job.run_after <= now;
  return isLeaseExpired(job, now) && job.attempts < job.max_attempts && !job.cancel_requested;
}

/**
 * A running job whose owner vanished and that has no attempt left (or was asked to
 * cancel) cannot be claimed again; this says what it becomes instead.
 */
export function settleAbandoned(job: Job, now: number): Job | null {
  if (!isLeaseExpired(job, now)) return null;
  // A backup with a fixed key may have written its backup before its worker died:
  // only a look at the repository can say whether it completed (runtime/recover.ts).
  if (needsRepositoryToSettle(job)) return null;
  if (job.cancel_requested) {
    return finish(job, now, "cancelled", { error: "Cancelled while its worker was gone" });
  }
  if (job.attempts >= job.max_attempts) {
    return finish(job, now, "failed", {
      error:
        `Worker lost its lease on attempt ${job.attempts} of ${job.max_attempts} (process killed or stalled)`,
    });
  }
  return null;
}

/** A backup whose key is fixed: its outcome is whatever its key holds in the repository. */
export function needsRepositoryToSettle(job: Job): boolean {
  return job.kind === "backup" && job.key !== null;
}

/**
 * An abandoned job (lease expired, or its owner known dead) settled from what the
 * repository holds: completed with `result` when its backup exists, else failed or
 * cancelled as settleAbandoned would have.
 */
export function settleFromRepository(
  job: Job,
  now: number,
  outcome: { result: Record<string, unknown> } | { error: string },
): Job {
  if ("result" in outcome) return complete(job, now, outcome.result);
  if (job.cancel_requested) {
    return finish(job, now, "cancelled", { error: "Cancelled while its worker was gone" });
  }
  return finish(job, now, "failed", { error: outcome.error });
}

/** A running job whose owner is known dead: its lease ends now instead of at its expiry. */
export function expireLease(job: Job, now: number): Job {
  return { ...job, lease_expires_at: Math.min(job.lease_expires_at ?? now, now), updated_at: now };
}

export function claim(job: Job, now: number, owner: string, token: string, leaseMs: number): Job {
  if (!isClaimable(job, now)) {
    throw new RangeError(`Job ${job.id} is not claimable in status ${job.status}`);
  }
  return {
    ...job,
    status: "running",
    attempts: job.attempts + 1,
    started_at: now,
    finished_at: null,
    updated_at: now,
    lease_owner: owner,
    lease_token: token,
    lease_expires_at: now + leaseMs,
  };
}

export function renew(job: Job, now: number, leaseMs: number): Job {
  return { ...job, lease_expires_at: now + leaseMs, updated_at: now };
}

function finish(
  job: Job,
  now: number,
  status: "completed" | "failed" | "cancelled",
  patch: Partial<Job> = {},
): Job {
  return {
    ...job,
    ...patch,
    status,
    finished_at: now,
    updated_at: now,
    lease_owner: null,
    lease_token: null,
    lease_expires_at: null,
  };
}

export function complete(job: Job, now: number, result: Record<string, unknown>): Job {
  return finish(job, now, "completed", { result, error: null });
}

/**
 * A failed attempt: back to pending after `retryDelayMs`, or dead-lettered when no
 * attempt is left or the failure is permanent (retrying cannot help). A `result`
 * (a check's report) is kept on a job that ends failed.
 */
export function fail(
  job: Job,
  now: number,
  error: string,
  options: { retryDelayMs: number; permanent?: boolean; result?: Record<string, unknown> },
): Job {
  if (options.permanent || job.attempts >= job.max_attempts) {
    return finish(job, now, "failed", {
      error,
      ...(options.result ? { result: options.result } : {}),
    });
  }
  return {
    ...job,
    status: "pending",
    error,
    run_after: now + options.retryDelayMs,
    updated_at: now,
    lease_owner: null,
    lease_token: null,
    lease_expires_at: null,
  };
}

/** A pending job is cancelled at once; a running one is flagged for its worker. */
export function requestCancel(job: Job, now: number): Job {
  if (TERMINAL.has(job.status)) {
    throw new CairnError("JOB_NOT_CANCELLABLE", `Job ${job.id} is already ${job.status}`);
  }
  if (job.status === "pending") {
    return finish(job, now, "cancelled", { error: "Cancelled before it started" });
  }
  return { ...job, cancel_requested: true, updated_at: now };
}

export function markCancelled(job: Job, now: number): Job {
  return finish(job, now, "cancelled", { error: "Cancelled while running" });
}

/** Shutdown hands a running job back without spending one of its attempts. */
export function release(job: Job, now: number): Job {
  return {
    ...job,
    status: "pending",
    attempts: Math.max(0, job.attempts - 1),
    run_after: now,
    updated_at: now,
    lease_owner: null,
    lease_token: null,
    lease_expires_at: null,
  };
}

/** Out of the dead-letter queue: pending again with a fresh set of attempts. */
export function requeue(job: Job, now: number): Job {
  if (job.status !== "failed") {
    throw new CairnError(
      "JOB_NOT_REQUEUEABLE",
      `Job ${job.id} is ${job.status}; only failed jobs can be requeued`,
    );
  }
  return {
    ...job,
    status: "pending",
    attempts: 0,
    error: null,
    progress: null,
    result: null,
    started_at: null,
    finished_at: null,
    run_after: now,
    updated_at: now,
    cancel_requested: false,
  };
}

import type { Job } from "../jobs/types.ts";
import { redact } from "../redact.ts";
import type { NotifyEvent } from "./config.ts";

/**
 * One event as the outbox stores it and every channel renders it. It carries names,
 * ids, times and redacted error text only: never a URL, password, token or key.
 */
export interface EventPayload extends Record<string, unknown> {
  event: NotifyEvent;
  /** ISO 8601 time the event happened (the job's finish, or the check's time). */
  occurred_at: string;
  client: string | null;
  /** One sentence for humans (ntfy, Slack, email subject lines). */
  summary: string;
  job?: {
    id: number;
    kind: string;
    status: string;
    key: string | null;
    attempts: number;
    max_attempts: number;
    error: string | null;
    schedule_id: number | null;
    finished_at: string | null;
  };
  /** backup_overdue: the newest successful backup (null: never), and the limit in ms. */
  last_success_at?: string | null;
  max_age_ms?: number;
}

/** An event and its idempotency key (unique per channel, see NewDelivery.dedupe_key). */
export interface DetectedEvent {
  dedupe_key: string;
  payload: EventPayload;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function jobPart(job: Job): NonNullable<EventPayload["job"]> {
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    key: job.key,
    attempts: job.attempts,
    max_attempts: job.max_attempts,
    error: job.error === null ? null : redact(job.error).slice(0, 2000),
    schedule_id: job.schedule_id,
    finished_at: iso(job.finished_at),
  };
}

const who = (job: Job) => (job.client_name ? ` of ${job.client_name}` : "");

/**
 * The event a job in a final state stands for: a failed verify job is verify_failed,
 * any other failed job job_failed (it is in the dead-letter queue), a completed job
 * job_succeeded; cancelled and unfinished jobs are no event. The key includes
 * finished_at, so a job requeued from the DLQ that fails again is a new event.
 */
export function jobEvent(job: Job): DetectedEvent | null {
  if (job.finished_at === null) return null;
  const at = job.finished_at;
  if (job.status === "failed") {
    const event: NotifyEvent = job.kind === "verify" ? "verify_failed" : "job_failed";
    const what = job.kind === "verify" ? "Verification" : `${cap(job.kind)} job ${job.id}`;
    return {
      dedupe_key: `${event}:${job.id}:${at}`,
      payload: {
        event,
        occurred_at: iso(at)!,
        client: job.client_name,
        summary: `${what}${who(job)} failed after ${job.attempts} attempt${
          job.attempts === 1 ? "" : "s"
        }: ${redact(job.error ?? "no error recorded").slice(0, 300)}`,
        job: jobPart(job),
      },
    };
  }
  if (job.status === "completed") {
    return {
      dedupe_key: `job_succeeded:${job.id}:${at}`,
      payload: {
        event: "job_succeeded",
        occurred_at: iso(at)!,
        client: job.client_name,
        summary: `${cap(job.kind)} job ${job.id}${who(job)} succeeded${
          job.key ? ` (${job.key})` : ""
        }`,
        job: jobPart(job),
      },
    };
  }
  return null;
}

/** A job attempt started (healthchecks' start ping); one per attempt. */
export function startedEvent(job: Job, now: number): DetectedEvent {
  return {
    dedupe_key: `job_started:${job.id}:${job.attempts}`,
    payload: {
      event: "job_started",
      occurred_at: iso(now)!,
      client: job.client_name,
      summary: `${cap(job.kind)} job ${job.id}${who(job)} started (attempt ${job.attempts})`,
      job: jobPart(job),
    },
  };
}

/** A client's backup succeeded after its previous final backup outcome was a failure. */
export function recoveredEvent(job: Job, failed: Job): DetectedEvent {
  return {
    dedupe_key: `client_recovered:${job.id}`,
    payload: {
      event: "client_recovered",
      occurred_at: iso(job.finished_at)!,
      client: job.client_name,
      summary:
        `${job.client_name} recovered: backup job ${job.id} succeeded after job ${failed.id} failed`,
      job: jobPart(job),
    },
  };
}

/**
 * A client is overdue. One event per episode: the key names the newest success (or
 * "never"), so the next success ends the episode and a later lapse is a new event.
 */
export function overdueEvent(
  client: string,
  lastSuccess: { id: number; at: number } | null,
  maxAgeMs: number,
  now: number,
): DetectedEvent {
  const hours = Math.round(maxAgeMs / 360_000) / 10;
  return {
    dedupe_key: `backup_overdue:${client}:${lastSuccess ? lastSuccess.id : "never"}`,
    payload: {
      event: "backup_overdue",
      occurred_at: iso(now)!,
      client,
      summary: lastSuccess
        ? `${client} is overdue: no successful backup since ${
          iso(lastSuccess.at)
        } (limit ${hours} h)`
        : `${client} is overdue: no successful backup at all (limit ${hours} h)`,
      last_success_at: lastSuccess ? iso(lastSuccess.at) : null,
      max_age_ms: maxAgeMs,
    },
  };
}

/** What POST /admin/notifications/test sends. */
export function testEvent(now: number): DetectedEvent {
  return {
    dedupe_key: `test:${crypto.randomUUID()}`,
    payload: {
      event: "test",
      occurred_at: iso(now)!,
      client: null,
      summary: "Test notification from cairn: this channel works",
    },
  };
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

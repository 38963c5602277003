import { shownProgress } from "./progress.ts";
import { z } from "zod";

/** check: a repository check (src/repository/check.ts), client_name null. */
export const JOB_KINDS = ["backup", "restore", "verify", "prune", "check"] as const;
export type JobKind = typeof JOB_KINDS[number];
export const JOB_STATUSES = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = typeof JOB_STATUSES[number];
export const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

export interface Progress {
  bytes_done: number;
  bytes_total: number | null;
  phase?: string;
}

/** What a job needs beyond its kind and client: restore target, prune options. */
export const JobParamsSchema = z.object({
  /** Restore target; a password in it is stored as *** (see runtime/target_secrets.ts). */
  target: z.string().min(1).optional(),
  /** Where this process keeps the target's credential in memory. */
  target_ref: z.string().min(1).optional(),
  /** PostgreSQL restore: only these tables, then no_owner / keep_old options. */
  tables: z.array(z.string().min(1)).optional(),
  no_owner: z.boolean().optional(),
  keep_old: z.boolean().optional(),
  replace: z.boolean().optional(),
  flush: z.boolean().optional(),
  dry_run: z.boolean().optional(),
  /** check: hash every stored byte against its manifest's sha256. */
  read_data: z.boolean().optional(),
}).strict();
export type JobParams = z.infer<typeof JobParamsSchema>;

/** A job as the stores keep it: times are epoch milliseconds, lease fields included. */
export interface Job {
  id: number;
  kind: JobKind;
  client_name: string | null;
  key: string | null;
  label: string | null;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  progress: Progress | null;
  error: string | null;
  schedule_id: number | null;
  params: JobParams;
  result: Record<string, unknown> | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  run_after: number;
  updated_at: number;
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  cancel_requested: boolean;
}

export interface NewJob {
  kind: JobKind;
  client_name: string | null;
  key?: string | null;
  label?: string | null;
  max_attempts: number;
  schedule_id?: number | null;
  params?: JobParams;
  run_after?: number;
}

export const RetentionSchema = z.object({
  keep_last: z.number().int().nonnegative().optional(),
  /** The newest backup of each of the newest N 15-minute periods. */
  keep_frequent: z.number().int().nonnegative().optional(),
  keep_hourly: z.number().int().nonnegative().optional(),
  keep_daily: z.number().int().nonnegative().optional(),
  keep_weekly: z.number().int().nonnegative().optional(),
  keep_monthly: z.number().int().nonnegative().optional(),
  keep_yearly: z.number().int().nonnegative().optional(),
}).strict();
export type Retention = z.infer<typeof RetentionSchema>;

export const SCHEDULE_KINDS = ["backup", "verify"] as const;
export type ScheduleKind = typeof SCHEDULE_KINDS[number];

export interface Schedule {
  id: number;
  client_name: string;
  /** backup (the default) makes backups; verify rehearses the client's newest backup. */
  kind: ScheduleKind;
  /** Declared in the config's `schedules:` (reconciled at start); the API refuses to edit it. */
  config_owned: boolean;
  /** Whether a successful backup of this schedule is followed by a prune (default true). */
  auto_prune: boolean;
  cron: string;
  timezone: string;
  label: string;
  enabled: boolean;
  retention: Retention;
  next_run_at: number | null;
  last_run_at: number | null;
  last_job_id: number | null;
  created_at: number;
  updated_at: number;
}

/** kind defaults to backup, config_owned to false, auto_prune to true. */
export type NewSchedule =
  & Omit<
    Schedule,
    | "id"
    | "created_at"
    | "updated_at"
    | "last_run_at"
    | "last_job_id"
    | "kind"
    | "config_owned"
    | "auto_prune"
  >
  & Partial<Pick<Schedule, "kind" | "config_owned" | "auto_prune">>;

export type SchedulePatch = Partial<Omit<Schedule, "id" | "created_at" | "updated_at">>;

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The job record of SPEC section 4, as the CLI prints it and the API returns it. */
export function jobRecord(job: Job) {
  return {
    id: job.id,
    kind: job.kind,
    client_name: job.client_name,
    // A backup's key is fixed before its artifact exists; one that never finished
    // names nothing, so it is not shown as if it did.
    key: job.kind === "backup" && (job.status === "failed" || job.status === "cancelled")
      ? null
      : job.key,
    label: job.label,
    status: job.status,
    attempts: job.attempts,
    max_attempts: job.max_attempts,
    progress: shownProgress(job.progress, job.status),
    error: job.error,
    schedule_id: job.schedule_id,
    params: job.params,
    cancel_requested: job.cancel_requested,
    created_at: iso(job.created_at),
    started_at: iso(job.started_at),
    finished_at: iso(job.finished_at),
    run_after: iso(job.run_after),
    result: job.result,
  };
}
export type JobRecord = ReturnType<typeof jobRecord>;

export function scheduleRecord(s: Schedule) {
  return {
    ...s,
    next_run_at: iso(s.next_run_at),
    last_run_at: iso(s.last_run_at),
    created_at: iso(s.created_at),
    updated_at: iso(s.updated_at),
  };
}

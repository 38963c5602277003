import { z } from "zod";
import { JOB_KINDS, JOB_STATUSES, RetentionSchema, SCHEDULE_KINDS } from "../jobs/types.ts";
import { cronProblem, timezoneProblem } from "../jobs/cron.ts";
import { CLIENT_NAME, LABEL } from "../repository/keys.ts";
import { parseTableName } from "../engines/postgres/toc.ts";

export const ClientName = z.string().regex(CLIENT_NAME, "must be 1-63 of a-z, 0-9, _ and -");
/**
 * A name that must be a configured client: checked by lookup (requireClient), so an
 * unknown one, whatever its spelling ("toString", "__defineGetter__"), is
 * UNKNOWN_CLIENT like any other, not a grammar error.
 */
const ClientRef = z.string().min(1, "must not be empty").max(255);
export const Label = z.string().regex(LABEL, "must be 1-40 of a-z, 0-9, _ and -");
const Limit = z.coerce.number().int().min(1).max(1000);
const Cursor = z.string().min(1).max(500);

/** A job or schedule id in a path: digits only, so "abc" and "1.5" are named, not coerced to NaN. */
export const IdParam = z.string()
  .regex(/^[1-9][0-9]{0,14}$/, "must be a positive integer")
  .transform(Number);

export const CreateBackupBody = z.strictObject({
  client_name: ClientRef.optional(),
  label: Label.optional(),
});

export const ListBackupsQuery = z.strictObject({
  client_name: ClientName.optional(),
  limit: Limit.default(50),
  cursor: Cursor.optional(),
});

/** `schema.table`, parts in double quotes when they hold a dot, quote or space. */
export const TableName = z.string().max(300).superRefine((v, ctx) => {
  try {
    parseTableName(v);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

export const RestoreBody = z.strictObject({
  client_name: ClientRef.optional(),
  target: z.string().min(1).max(4096).optional(),
  replace: z.boolean().optional(),
  flush: z.boolean().optional(),
  /** PostgreSQL: restore only these tables into the target, leaving the rest. */
  tables: z.array(TableName).min(1).max(10000).optional(),
  /** PostgreSQL: no owners and grants (roles missing on the target). */
  no_owner: z.boolean().optional(),
  /** PostgreSQL: keep the replaced database as <name>_pre_restore_<stamp>. */
  keep_old: z.boolean().optional(),
});

export const VerifyBody = z.strictObject({ client_name: ClientRef.optional() });

export const ListJobsQuery = z.strictObject({
  status: z.enum(JOB_STATUSES).optional(),
  client_name: ClientName.optional(),
  kind: z.enum(JOB_KINDS).optional(),
  limit: Limit.default(50),
  cursor: Cursor.optional(),
});

export const DlqQuery = z.strictObject({
  client_name: ClientName.optional(),
  kind: z.enum(JOB_KINDS).optional(),
  limit: Limit.default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

export const BulkRequeueBody = z.strictObject({
  client_name: ClientName.optional(),
  kind: z.enum(JOB_KINDS).optional(),
});

export const CleanupBody = z.strictObject({ older_than_days: z.number().nonnegative() });

export const PruneBody = z.strictObject({
  client_name: ClientRef.optional(),
  dry_run: z.boolean().optional(),
});

const Cron = z.string().superRefine((v, ctx) => {
  const problem = cronProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
const TimeZone = z.string().superRefine((v, ctx) => {
  const problem = timezoneProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

export const CreateScheduleBody = z.strictObject({
  client_name: ClientRef.optional(),
  cron: Cron,
  timezone: TimeZone.default("UTC"),
  label: Label.default("scheduled"),
  enabled: z.boolean().default(true),
  retention: RetentionSchema.default({}),
  /** backup makes backups; verify rehearses the client's newest backup. */
  kind: z.enum(SCHEDULE_KINDS).default("backup"),
  /** false: no prune after this schedule's backups (prune by hand or another schedule). */
  auto_prune: z.boolean().default(true),
});

export const PatchScheduleBody = z.strictObject({
  client_name: ClientRef.optional(),
  cron: Cron.optional(),
  timezone: TimeZone.optional(),
  label: Label.optional(),
  enabled: z.boolean().optional(),
  retention: RetentionSchema.optional(),
  kind: z.enum(SCHEDULE_KINDS).optional(),
  auto_prune: z.boolean().optional(),
  next_run_at: z.iso.datetime({ offset: true }).nullable().optional(),
  last_run_at: z.iso.datetime({ offset: true }).nullable().optional(),
  last_job_id: z.number().int().positive().nullable().optional(),
});

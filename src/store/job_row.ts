/**
 * The job fields both SQL stores keep in columns of the same name, in the order the
 * stores bind them: SQLite's jobs table puts `id` first (sqlite_schema.ts); the
 * PostgreSQL store's bigserial assigns ids on insert, and a store copy's import binds
 * `id` beside these (postgres_sql.ts).
 */
export const JOB_FIELDS = [
  "kind",
  "client_name",
  "key",
  "label",
  "status",
  "attempts",
  "max_attempts",
  "progress",
  "error",
  "schedule_id",
  "params",
  "result",
  "created_at",
  "started_at",
  "finished_at",
  "run_after",
  "updated_at",
  "lease_owner",
  "lease_token",
  "lease_expires_at",
  "cancel_requested",
] as const;

import { JOB_FIELDS } from "./job_row.ts";

/** Numbered migrations; PRAGMA user_version records how many have run. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     client_name TEXT,
     key TEXT,
     label TEXT,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     max_attempts INTEGER NOT NULL,
     progress TEXT,
     error TEXT,
     schedule_id INTEGER,
     params TEXT NOT NULL,
     result TEXT,
     created_at INTEGER NOT NULL,
     started_at INTEGER,
     finished_at INTEGER,
     run_after INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     lease_owner TEXT,
     lease_token TEXT,
     lease_expires_at INTEGER,
     cancel_requested INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX jobs_due ON jobs(status, run_after, id);
   CREATE INDEX jobs_lease ON jobs(status, lease_expires_at);
   CREATE INDEX jobs_client ON jobs(client_name, id);
   CREATE INDEX jobs_schedule ON jobs(schedule_id);
   CREATE TABLE schedules (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     client_name TEXT NOT NULL,
     cron TEXT NOT NULL,
     timezone TEXT NOT NULL,
     label TEXT NOT NULL,
     enabled INTEGER NOT NULL,
     retention TEXT NOT NULL,
     next_run_at INTEGER,
     last_run_at INTEGER,
     last_job_id INTEGER,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );`,
  // The sweep asks which job holds a backup key.
  `CREATE INDEX jobs_key ON jobs(key);`,
  // The notification outbox (src/notify/delivery.ts); (channel, dedupe_key) makes
  // event detection idempotent.
  `CREATE TABLE deliveries (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     channel TEXT NOT NULL,
     event TEXT NOT NULL,
     dedupe_key TEXT NOT NULL,
     payload TEXT NOT NULL,
     max_attempts INTEGER NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     last_error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     delivered_at INTEGER,
     UNIQUE (channel, dedupe_key)
   );
   CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at, id);`,
  // Schedules: kind (backup|verify), config ownership, the automatic-prune switch.
  `ALTER TABLE schedules ADD COLUMN kind TEXT NOT NULL DEFAULT 'backup';
   ALTER TABLE schedules ADD COLUMN config_owned INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE schedules ADD COLUMN auto_prune INTEGER NOT NULL DEFAULT 1;`,
  // Status, metrics and notifications ask for a client's newest job of a kind and status,
  // and for counts by kind and status: index seeks and a covering scan, not table scans.
  `CREATE INDEX jobs_client_kind_status ON jobs(client_name, kind, status, id);
   CREATE INDEX jobs_kind_status ON jobs(kind, status);`,
];

export const DELIVERY_COLUMNS = [
  "id",
  "channel",
  "event",
  "dedupe_key",
  "payload",
  "max_attempts",
  "status",
  "attempts",
  "next_attempt_at",
  "last_error",
  "created_at",
  "updated_at",
  "delivered_at",
] as const;

export const JOB_COLUMNS = ["id", ...JOB_FIELDS] as const;

export const SCHEDULE_COLUMNS = [
  "id",
  "client_name",
  "cron",
  "timezone",
  "label",
  "enabled",
  "retention",
  "next_run_at",
  "last_run_at",
  "last_job_id",
  "created_at",
  "updated_at",
  "kind",
  "config_owned",
  "auto_prune",
] as const;

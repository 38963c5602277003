import { JOB_FIELDS } from "./job_row.ts";

/**
 * The PostgreSQL job store's schema and every statement it runs, by name, in one
 * place. A new store method adds its statement here and a short method in
 * postgres.ts that runs it (see PostgresStore#q / #tx).
 *
 * Times are epoch milliseconds in bigint columns (the model's unit, so the
 * store's injected clock works as it does for sqlite and jsonl). Parameters are
 * cast in the statement so no type is left to inference; JSON goes in as text
 * (`$n::text::jsonb`) because the driver serializes only `json`, not `jsonb`.
 */

/** The key of the advisory lock that serializes migrations (any constant; "cairn" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x636169726e;

/** The first half of the two-int advisory lock on a backup key (the second is its hash). */
export const KEY_LOCK_CLASS = 0x6361;

/**
 * The key of the store's use lock (store/use_lock.ts): held shared by every daemon and
 * CLI job command, exclusively by `cairn store copy` ("cairu" in ASCII).
 */
export const STORE_USE_LOCK_KEY = 0x6361697275;

/** The channel an enqueue (or any job becoming pending) notifies; the payload is its client. */
export const JOBS_CHANNEL = "cairn_jobs";

/** Numbered migrations: cairn_migrations records which have run. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE cairn_jobs (
     id bigserial PRIMARY KEY,
     kind text NOT NULL,
     client_name text,
     key text,
     label text,
     status text NOT NULL,
     attempts integer NOT NULL,
     max_attempts integer NOT NULL,
     progress jsonb,
     error text,
     schedule_id bigint,
     params jsonb NOT NULL,
     result jsonb,
     created_at bigint NOT NULL,
     started_at bigint,
     finished_at bigint,
     run_after bigint NOT NULL,
     updated_at bigint NOT NULL,
     lease_owner text,
     lease_token text,
     lease_expires_at bigint,
     cancel_requested boolean NOT NULL DEFAULT false
   );
   CREATE INDEX cairn_jobs_pending ON cairn_jobs (run_after, id) WHERE status = 'pending';
   CREATE INDEX cairn_jobs_running ON cairn_jobs (lease_expires_at) WHERE status = 'running';
   CREATE INDEX cairn_jobs_status ON cairn_jobs (status, id);
   CREATE INDEX cairn_jobs_client ON cairn_jobs (client_name, id);
   CREATE INDEX cairn_jobs_schedule ON cairn_jobs (schedule_id);
   CREATE INDEX cairn_jobs_key ON cairn_jobs (key);
   CREATE TABLE cairn_schedules (
     id bigserial PRIMARY KEY,
     client_name text NOT NULL,
     cron text NOT NULL,
     timezone text NOT NULL,
     label text NOT NULL,
     enabled boolean NOT NULL,
     retention jsonb NOT NULL,
     next_run_at bigint,
     last_run_at bigint,
     last_job_id bigint,
     created_at bigint NOT NULL,
     updated_at bigint NOT NULL
   );
   -- Every job that becomes pending wakes idle daemons (NOTIFY is delivered at commit).
   CREATE FUNCTION cairn_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('${JOBS_CHANNEL}', coalesce(NEW.client_name, ''));
     RETURN NULL;
   END $$;
   CREATE TRIGGER cairn_jobs_notify AFTER INSERT OR UPDATE OF status ON cairn_jobs
     FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION cairn_jobs_notify();`,
  // Nodes: which daemons share this store, the clients each can run, their heartbeats.
  `CREATE TABLE cairn_nodes (
     name text PRIMARY KEY,
     owner text NOT NULL,
     clients jsonb NOT NULL,
     started_at bigint NOT NULL,
     heartbeat_at bigint NOT NULL,
     stopped_at bigint
   );`,
  // Issue 22: the notification outbox (src/notify/delivery.ts; (channel, dedupe_key)
  // makes event detection idempotent) and the schedule fields kind, config_owned and
  // auto_prune, whose defaults are what schedules written before them meant.
  `CREATE TABLE cairn_deliveries (
     id bigserial PRIMARY KEY,
     channel text NOT NULL,
     event text NOT NULL,
     dedupe_key text NOT NULL,
     payload jsonb NOT NULL,
     max_attempts integer NOT NULL,
     status text NOT NULL,
     attempts integer NOT NULL,
     next_attempt_at bigint NOT NULL,
     last_error text,
     created_at bigint NOT NULL,
     updated_at bigint NOT NULL,
     delivered_at bigint,
     UNIQUE (channel, dedupe_key)
   );
   CREATE INDEX cairn_deliveries_due ON cairn_deliveries (next_attempt_at, id)
     WHERE status = 'pending';
   CREATE INDEX cairn_deliveries_settled ON cairn_deliveries (updated_at)
     WHERE status <> 'pending';
   ALTER TABLE cairn_schedules ADD COLUMN kind text NOT NULL DEFAULT 'backup';
   ALTER TABLE cairn_schedules ADD COLUMN config_owned boolean NOT NULL DEFAULT false;
   ALTER TABLE cairn_schedules ADD COLUMN auto_prune boolean NOT NULL DEFAULT true;
   -- Status and metrics ask for a client's newest job of a kind and status.
   CREATE INDEX cairn_jobs_client_kind_status ON cairn_jobs (client_name, kind, status, id);`,
  // Who holds the store's use lock (store/use_lock.ts), by server backend pid: a row
  // counts only while that backend holds the lock (pg_locks), so stale rows are harmless.
  `CREATE TABLE cairn_store_users (
     backend_pid integer PRIMARY KEY,
     holder jsonb NOT NULL
   );`,
];

export const JOB_COLUMNS = JOB_FIELDS;

/** The SQL type each job column's parameter is cast to (JSON as text, see above). */
const JOB_CASTS: Record<typeof JOB_COLUMNS[number], string> = {
  kind: "text",
  client_name: "text",
  key: "text",
  label: "text",
  status: "text",
  attempts: "integer",
  max_attempts: "integer",
  progress: "text::jsonb",
  error: "text",
  schedule_id: "bigint",
  params: "text::jsonb",
  result: "text::jsonb",
  created_at: "bigint",
  started_at: "bigint",
  finished_at: "bigint",
  run_after: "bigint",
  updated_at: "bigint",
  lease_owner: "text",
  lease_token: "text",
  lease_expires_at: "bigint",
  cancel_requested: "boolean",
};

export const SCHEDULE_COLUMNS = [
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

const SCHEDULE_CASTS: Record<typeof SCHEDULE_COLUMNS[number], string> = {
  client_name: "text",
  cron: "text",
  timezone: "text",
  label: "text",
  enabled: "boolean",
  retention: "text::jsonb",
  next_run_at: "bigint",
  last_run_at: "bigint",
  last_job_id: "bigint",
  created_at: "bigint",
  updated_at: "bigint",
  kind: "text",
  config_owned: "boolean",
  auto_prune: "boolean",
};

const jobValues = (from: number) =>
  JOB_COLUMNS.map((c, i) => `$${from + i}::${JOB_CASTS[c]}`).join(", ");
const jobSets = (from: number) =>
  JOB_COLUMNS.map((c, i) => `${c} = $${from + i}::${JOB_CASTS[c]}`).join(", ");
const scheduleValues = (from: number) =>
  SCHEDULE_COLUMNS.map((c, i) => `$${from + i}::${SCHEDULE_CASTS[c]}`).join(", ");
const scheduleSets = (from: number) =>
  SCHEDULE_COLUMNS.map((c, i) => `${c} = $${from + i}::${SCHEDULE_CASTS[c]}`).join(", ");

/** The claim's id ($4) and clients ($5) conditions. */
const CLAIM_FILTER = `($4::bigint IS NULL OR id = $4::bigint)
  AND ($5::text IS NULL OR client_name IS NULL OR jsonb_exists($5::text::jsonb, client_name))`;

/** Named statements. Parameters are documented beside each. */
export const SQL = {
  // -- migrations ----------------------------------------------------------------------
  lockMigrations: `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`,
  createMigrations:
    `CREATE TABLE IF NOT EXISTS cairn_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
  migrationVersion: `SELECT coalesce(max(version), 0)::integer AS version FROM cairn_migrations`,
  recordMigration: `INSERT INTO cairn_migrations (version) VALUES ($1::integer)`,
  /** The database's clock in epoch ms: nodes agree on lease expiry by using it. */
  dbNow: `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,

  // -- jobs ----------------------------------------------------------------------------
  /** $1.. the JOB_COLUMNS values. */
  insertJob: `INSERT INTO cairn_jobs (${JOB_COLUMNS.join(", ")}) VALUES (${
    jobValues(1)
  }) RETURNING *`,
  /** $1 id, $2.. the JOB_COLUMNS values. */
  putJob: `UPDATE cairn_jobs SET ${jobSets(2)} WHERE id = $1::bigint`,
  getJob: `SELECT * FROM cairn_jobs WHERE id = $1::bigint`,
  /** $1 id: the row and its version (xmin changes with every update of the row). */
  getJobVersioned: `SELECT xmin::text AS row_version, * FROM cairn_jobs WHERE id = $1::bigint`,
  /**
   * $1 id, $2 the row version read, $3 the lease token held, $4.. the JOB_COLUMNS
   * values: a compare-and-set, so that a transition of a held job is one statement
   * (no transaction round trips). No row back: the row changed meanwhile (read again)
   * or the lease is gone.
   */
  putJobIfUnchanged: `UPDATE cairn_jobs SET ${jobSets(4)}
    WHERE id = $1::bigint AND xmin = $2::text::xid AND status = 'running' AND lease_token = $3::text
    RETURNING id`,
  /** $1 id: the row locked for a read-modify-write in a transaction. */
  lockJob: `SELECT * FROM cairn_jobs WHERE id = $1::bigint FOR UPDATE`,
  deleteJob: `DELETE FROM cairn_jobs WHERE id = $1::bigint`,
  /**
   * The claim, in one statement (NOTES "Job queues on PostgreSQL"): $1 now, $2 owner,
   * $3 lease ms, $4 only this id (or null), $5 the clients this node runs as a JSON
   * array (or null: any), $6 how many jobs at most. A job without a client (prune of
   * all, etc.) runs anywhere. SKIP LOCKED lets concurrent claimers pass over each
   * other's candidate rows; each claimed job gets a lease token of its own.
   *
   * The two kinds of claimable job (state.isClaimable: due and pending; running under
   * an expired lease with an attempt left) are looked up apart, each along its own
   * partial index, and the oldest due are taken: one WHERE with an OR of both would
   * scan and sort every pending job on each claim.
   */
  claim: `WITH pending AS (
      SELECT id, run_after FROM cairn_jobs
      WHERE status = 'pending' AND run_after <= $1::bigint AND ${CLAIM_FILTER}
      ORDER BY run_after, id LIMIT $6::integer FOR UPDATE SKIP LOCKED
    ), expired AS (
      SELECT id, run_after FROM cairn_jobs
      WHERE status = 'running' AND lease_expires_at <= $1::bigint
        AND attempts < max_attempts AND NOT cancel_requested AND ${CLAIM_FILTER}
      ORDER BY run_after, id LIMIT $6::integer FOR UPDATE SKIP LOCKED
    ), picked AS (
      SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) c
      ORDER BY run_after, id LIMIT $6::integer
    )
    UPDATE cairn_jobs SET status = 'running', attempts = attempts + 1,
      started_at = $1::bigint, finished_at = NULL, updated_at = $1::bigint,
      lease_owner = $2::text, lease_token = gen_random_uuid()::text,
      lease_expires_at = $1::bigint + $3::bigint
    FROM picked WHERE cairn_jobs.id = picked.id
    RETURNING cairn_jobs.xmin::text AS row_version, cairn_jobs.*`,
  /**
   * Running jobs with an expired lease that cannot be claimed again (no attempt left,
   * or cancel requested); a backup with a fixed key waits for recover.ts. $1 now.
   */
  abandoned: `SELECT id FROM cairn_jobs
    WHERE status = 'running' AND lease_expires_at <= $1::bigint
      AND (attempts >= max_attempts OR cancel_requested)
      AND NOT (kind = 'backup' AND key IS NOT NULL)`,
  /** The heartbeat: $1 id, $2 token, $3 now, $4 lease ms, $5 progress JSON (or null: keep). */
  renew: `UPDATE cairn_jobs SET lease_expires_at = $3::bigint + $4::bigint, updated_at = $3::bigint,
      progress = coalesce($5::text::jsonb, progress)
    WHERE id = $1::bigint AND status = 'running' AND lease_token = $2::text
    RETURNING xmin::text AS row_version, *`,
  /** $1 key, $2 id: another backup job holding this key. */
  keyHolder:
    `SELECT id FROM cairn_jobs WHERE key = $1::text AND kind = 'backup' AND id <> $2::bigint
    LIMIT 1`,
  /** Serializes key assignment: two jobs fixing one key at once would both see it free. */
  lockKey: `SELECT pg_advisory_xact_lock(${KEY_LOCK_CLASS}, hashtext($1::text))`,
  runningWithOwner: `SELECT id, lease_owner, lease_token FROM cairn_jobs
    WHERE status = 'running' AND lease_owner IS NOT NULL`,
  countByKindStatus:
    `SELECT kind, status, count(*)::integer AS n FROM cairn_jobs GROUP BY kind, status`,

  /** $1 id, $2.. the JOB_COLUMNS values: a job copied from another store, id kept. */
  importJob: `INSERT INTO cairn_jobs (id, ${JOB_COLUMNS.join(", ")}) VALUES ($1::bigint, ${
    jobValues(2)
  })`,
  /** After an import: the next id follows the largest one. */
  resetJobIds:
    `SELECT setval(pg_get_serial_sequence('cairn_jobs', 'id'), coalesce(max(id), 0) + 1, false) FROM cairn_jobs`,

  // -- schedules -----------------------------------------------------------------------
  insertSchedule: `INSERT INTO cairn_schedules (${SCHEDULE_COLUMNS.join(", ")}) VALUES (${
    scheduleValues(1)
  }) RETURNING *`,
  putSchedule: `UPDATE cairn_schedules SET ${scheduleSets(2)} WHERE id = $1::bigint`,
  getSchedule: `SELECT * FROM cairn_schedules WHERE id = $1::bigint`,
  lockSchedule: `SELECT * FROM cairn_schedules WHERE id = $1::bigint FOR UPDATE`,
  allSchedules: `SELECT * FROM cairn_schedules ORDER BY id`,
  deleteSchedule: `DELETE FROM cairn_schedules WHERE id = $1::bigint`,
  nullScheduleRefs: `UPDATE cairn_jobs SET schedule_id = NULL WHERE schedule_id = $1::bigint`,
  /**
   * The due schedules, locked: $1 now. A second daemon's statement skips the rows the
   * first holds, and once the first commits their next_run_at is past $1, so an
   * occurrence fires once however many daemons tick together.
   */
  lockDueSchedules: `SELECT * FROM cairn_schedules
    WHERE enabled AND next_run_at IS NOT NULL AND next_run_at <= $1::bigint
    ORDER BY next_run_at, id FOR UPDATE SKIP LOCKED`,

  /** $1 id, $2.. the SCHEDULE_COLUMNS values. */
  importSchedule: `INSERT INTO cairn_schedules (id, ${
    SCHEDULE_COLUMNS.join(", ")
  }) VALUES ($1::bigint, ${scheduleValues(2)})`,
  resetScheduleIds:
    `SELECT setval(pg_get_serial_sequence('cairn_schedules', 'id'), coalesce(max(id), 0) + 1, false) FROM cairn_schedules`,

  // -- the notification outbox ----------------------------------------------------------
  /**
   * $1 channel, $2 event, $3 dedupe_key, $4 payload JSON, $5 max_attempts, $6 now. No
   * row back: (channel, dedupe_key) exists already (then findDelivery returns it).
   */
  insertDelivery: `INSERT INTO cairn_deliveries (channel, event, dedupe_key, payload,
      max_attempts, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES ($1::text, $2::text, $3::text, $4::text::jsonb, $5::integer, 'pending', 0,
      $6::bigint, $6::bigint, $6::bigint)
    ON CONFLICT (channel, dedupe_key) DO NOTHING RETURNING *`,
  /** $1 channel, $2 dedupe_key. */
  findDelivery: `SELECT * FROM cairn_deliveries WHERE channel = $1::text AND dedupe_key = $2::text`,
  /**
   * The outbox claim, in one statement: $1 now, $2 lease ms, $3 how many at most. SKIP
   * LOCKED lets two senders (two daemons) pass over each other's rows; the lease pushes
   * next_attempt_at out so neither takes a claimed delivery until it lapses.
   */
  claimDeliveries: `WITH picked AS (
      SELECT id FROM cairn_deliveries
      WHERE status = 'pending' AND next_attempt_at <= $1::bigint
      ORDER BY next_attempt_at, id LIMIT $3::integer FOR UPDATE SKIP LOCKED
    )
    UPDATE cairn_deliveries d SET next_attempt_at = $1::bigint + $2::bigint, updated_at = $1::bigint
    FROM picked WHERE d.id = picked.id
    RETURNING d.*`,
  /** $1 id: the row locked for the settle's read-modify-write. */
  lockDelivery: `SELECT * FROM cairn_deliveries WHERE id = $1::bigint FOR UPDATE`,
  /**
   * $1 id, $2 status, $3 attempts, $4 next_attempt_at, $5 last_error, $6 updated_at,
   * $7 delivered_at.
   */
  putDelivery: `UPDATE cairn_deliveries SET status = $2::text, attempts = $3::integer,
      next_attempt_at = $4::bigint, last_error = $5::text, updated_at = $6::bigint,
      delivered_at = $7::bigint
    WHERE id = $1::bigint`,
  /** $1 status (or null), $2 channel (or null), $3 limit, $4 only ids below (or null). */
  listDeliveries: `SELECT * FROM cairn_deliveries
    WHERE ($1::text IS NULL OR status = $1::text) AND ($2::text IS NULL OR channel = $2::text)
      AND ($4::bigint IS NULL OR id < $4::bigint)
    ORDER BY id DESC LIMIT $3::integer`,
  /** $1 id, then every column of a delivery copied from another store. */
  importDelivery: `INSERT INTO cairn_deliveries (id, channel, event, dedupe_key, payload,
      max_attempts, status, attempts, next_attempt_at, last_error, created_at, updated_at,
      delivered_at)
    VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text::jsonb, $6::integer, $7::text,
      $8::integer, $9::bigint, $10::text, $11::bigint, $12::bigint, $13::bigint)`,
  resetDeliveryIds:
    `SELECT setval(pg_get_serial_sequence('cairn_deliveries', 'id'), coalesce(max(id), 0) + 1, false) FROM cairn_deliveries`,
  countDeliveries: `SELECT channel, status, attempts > 0 AS retried, count(*)::integer AS n
    FROM cairn_deliveries GROUP BY channel, status, attempts > 0`,
  /** $1 before (ms). */
  deleteDeliveriesBefore: `DELETE FROM cairn_deliveries
    WHERE status IN ('delivered', 'dead') AND updated_at < $1::bigint RETURNING id`,

  // -- the store's use lock (store/use_lock.ts) -----------------------------------------
  tryUseShared: `SELECT pg_try_advisory_lock_shared(${STORE_USE_LOCK_KEY}) AS ok`,
  tryUseExclusive: `SELECT pg_try_advisory_lock(${STORE_USE_LOCK_KEY}) AS ok`,
  /** $1 the holder JSON: this session as a holder. */
  putStoreUser: `INSERT INTO cairn_store_users (backend_pid, holder)
    VALUES (pg_backend_pid(), $1::text::jsonb)
    ON CONFLICT (backend_pid) DO UPDATE SET holder = EXCLUDED.holder`,
  /** Whether this session holds the use lock (shared or exclusive). */
  useHeld: `SELECT count(*)::integer AS n FROM pg_locks
    WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted AND objsubid = 1
      AND classid::bigint * 4294967296 + objid::bigint = ${STORE_USE_LOCK_KEY}`,
  /** The holders of the use lock in this database, as they described themselves. */
  storeUsers: `SELECT u.holder FROM pg_locks l JOIN cairn_store_users u ON u.backend_pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint * 4294967296 + l.objid::bigint = ${STORE_USE_LOCK_KEY}
    ORDER BY l.pid`,

  // -- nodes ---------------------------------------------------------------------------
  /** $1 name, $2 owner, $3 clients JSON, $4 now. */
  upsertNode: `INSERT INTO cairn_nodes (name, owner, clients, started_at, heartbeat_at, stopped_at)
    VALUES ($1::text, $2::text, $3::text::jsonb, $4::bigint, $4::bigint, NULL)
    ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, clients = EXCLUDED.clients,
      started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, stopped_at = NULL`,
  /** $1 name, $2 owner, $3 now. */
  nodeHeartbeat: `UPDATE cairn_nodes SET heartbeat_at = $3::bigint
    WHERE name = $1::text AND owner = $2::text`,
  /** $1 name, $2 owner, $3 now. */
  nodeStopped: `UPDATE cairn_nodes SET stopped_at = $3::bigint, heartbeat_at = $3::bigint
    WHERE name = $1::text AND owner = $2::text`,
  allNodes: `SELECT * FROM cairn_nodes ORDER BY name`,
  /** Running jobs by lease owner, for the node listing. */
  runningByOwner: `SELECT lease_owner, array_agg(id ORDER BY id) AS ids FROM cairn_jobs
    WHERE status = 'running' GROUP BY lease_owner`,
  /** Clients of pending jobs: status compares them with what the live nodes declare. */
  pendingClients: `SELECT client_name, count(*)::integer AS n FROM cairn_jobs
    WHERE status = 'pending' AND client_name IS NOT NULL GROUP BY client_name`,
} as const;

/** A JobFilter as a WHERE clause; parameters are numbered from `from`. */
export function jobWhere(
  filter: {
    status?: string;
    client_name?: string;
    kind?: string;
    schedule_id?: number;
    key?: string;
    finished_before?: number;
  },
  from = 1,
): { sql: string; args: unknown[] } {
  const parts: string[] = [];
  const args: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    args.push(value);
    parts.push(sql.replace("?", `$${from + args.length - 1}`));
  };
  if (filter.status !== undefined) add("status = ?::text", filter.status);
  if (filter.client_name !== undefined) add("client_name = ?::text", filter.client_name);
  if (filter.kind !== undefined) add("kind = ?::text", filter.kind);
  if (filter.schedule_id !== undefined) add("schedule_id = ?::bigint", filter.schedule_id);
  if (filter.key !== undefined) add("key = ?::text", filter.key);
  if (filter.finished_before !== undefined) {
    add("finished_at IS NOT NULL AND finished_at < ?::bigint", filter.finished_before);
  }
  return { sql: parts.length ? parts.join(" AND ") : "TRUE", args };
}

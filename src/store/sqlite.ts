import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { deliveryValues } from "./delivery_row.ts";
import { dirname } from "node:path";
import { CairnError } from "../errors.ts";
import type { Job, JobStatus, Schedule } from "../jobs/types.ts";
import { type BaseOptions, BaseStore, decodeCursor, type Tx } from "./base.ts";
import type { JobFilter, PageOptions } from "./store.ts";
import { DELIVERY_COLUMNS, JOB_COLUMNS, MIGRATIONS, SCHEDULE_COLUMNS } from "./sqlite_schema.ts";
import type { Delivery, DeliveryStatus } from "../notify/delivery.ts";

type Row = Record<string, SQLInputValue>;

function jobFromRow(r: Row): Job {
  return {
    id: Number(r.id),
    kind: r.kind as Job["kind"],
    client_name: r.client_name as string | null,
    key: r.key as string | null,
    label: r.label as string | null,
    status: r.status as JobStatus,
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    progress: r.progress ? JSON.parse(r.progress as string) : null,
    error: r.error as string | null,
    schedule_id: r.schedule_id === null ? null : Number(r.schedule_id),
    params: JSON.parse(r.params as string),
    result: r.result ? JSON.parse(r.result as string) : null,
    created_at: Number(r.created_at),
    started_at: r.started_at === null ? null : Number(r.started_at),
    finished_at: r.finished_at === null ? null : Number(r.finished_at),
    run_after: Number(r.run_after),
    updated_at: Number(r.updated_at),
    lease_owner: r.lease_owner as string | null,
    lease_token: r.lease_token as string | null,
    lease_expires_at: r.lease_expires_at === null ? null : Number(r.lease_expires_at),
    cancel_requested: Number(r.cancel_requested) === 1,
  };
}

function jobToRow(j: Job): SQLInputValue[] {
  return [
    j.id,
    j.kind,
    j.client_name,
    j.key,
    j.label,
    j.status,
    j.attempts,
    j.max_attempts,
    j.progress ? JSON.stringify(j.progress) : null,
    j.error,
    j.schedule_id,
    JSON.stringify(j.params),
    j.result ? JSON.stringify(j.result) : null,
    j.created_at,
    j.started_at,
    j.finished_at,
    j.run_after,
    j.updated_at,
    j.lease_owner,
    j.lease_token,
    j.lease_expires_at,
    j.cancel_requested ? 1 : 0,
  ];
}

function scheduleFromRow(r: Row): Schedule {
  return {
    id: Number(r.id),
    client_name: r.client_name as string,
    cron: r.cron as string,
    timezone: r.timezone as string,
    label: r.label as string,
    enabled: Number(r.enabled) === 1,
    retention: JSON.parse(r.retention as string),
    next_run_at: r.next_run_at === null ? null : Number(r.next_run_at),
    last_run_at: r.last_run_at === null ? null : Number(r.last_run_at),
    last_job_id: r.last_job_id === null ? null : Number(r.last_job_id),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    kind: (r.kind ?? "backup") as Schedule["kind"],
    config_owned: Number(r.config_owned) === 1,
    auto_prune: r.auto_prune === undefined || Number(r.auto_prune) === 1,
  };
}

function scheduleToRow(s: Schedule): SQLInputValue[] {
  return [
    s.id,
    s.client_name,
    s.cron,
    s.timezone,
    s.label,
    s.enabled ? 1 : 0,
    JSON.stringify(s.retention),
    s.next_run_at,
    s.last_run_at,
    s.last_job_id,
    s.created_at,
    s.updated_at,
    s.kind,
    s.config_owned ? 1 : 0,
    s.auto_prune ? 1 : 0,
  ];
}

function deliveryFromRow(r: Row): Delivery {
  const num = (v: SQLInputValue) => (v === null ? null : Number(v));
  return {
    id: Number(r.id),
    channel: r.channel as string,
    event: r.event as string,
    dedupe_key: r.dedupe_key as string,
    payload: JSON.parse(r.payload as string),
    max_attempts: Number(r.max_attempts),
    status: r.status as DeliveryStatus,
    attempts: Number(r.attempts),
    next_attempt_at: Number(r.next_attempt_at),
    last_error: r.last_error as string | null,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    delivered_at: num(r.delivered_at),
  };
}

function where(filter: JobFilter): { sql: string; args: SQLInputValue[] } {
  const parts: string[] = [];
  const args: SQLInputValue[] = [];
  if (filter.status !== undefined) (parts.push("status = ?"), args.push(filter.status));
  if (filter.client_name !== undefined) {
    (parts.push("client_name = ?"), args.push(filter.client_name));
  }
  if (filter.kind !== undefined) (parts.push("kind = ?"), args.push(filter.kind));
  if (filter.schedule_id !== undefined) {
    (parts.push("schedule_id = ?"), args.push(filter.schedule_id));
  }
  if (filter.key !== undefined) (parts.push("key = ?"), args.push(filter.key));
  if (filter.finished_before !== undefined) {
    parts.push("finished_at IS NOT NULL AND finished_at < ?");
    args.push(filter.finished_before);
  }
  return { sql: parts.length ? parts.join(" AND ") : "1=1", args };
}

/**
 * SQLite job store: WAL journal, synchronous=FULL so every commit is fsynced, and
 * BEGIN IMMEDIATE so that a claim in one process excludes every other process.
 */
export class SqliteStore extends BaseStore {
  readonly kind = "sqlite" as const;
  readonly #db: DatabaseSync;
  readonly #stmts = new Map<string, StatementSync>();
  readonly #tx: Tx;

  private constructor(db: DatabaseSync, options: BaseOptions) {
    super(options);
    this.#db = db;
    this.#tx = this.#makeTx();
  }

  static async open(path: string, options: BaseOptions = {}): Promise<SqliteStore> {
    if (path !== ":memory:") await Deno.mkdir(dirname(path), { recursive: true });
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
      db.exec("PRAGMA busy_timeout = 10000");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec("PRAGMA foreign_keys = ON");
      migrate(db);
    } catch (error) {
      throw new CairnError(
        "STORE_CORRUPT",
        `Cannot open the SQLite job store ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    return new SqliteStore(db, options);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  protected transaction<T>(fn: (tx: Tx) => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn(this.#tx);
      this.#db.exec("COMMIT");
      return out;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }

  #makeTx(): Tx {
    const jobPlaceholders = JOB_COLUMNS.map(() => "?").join(", ");
    const schedPlaceholders = SCHEDULE_COLUMNS.map(() => "?").join(", ");
    const putJob = `INSERT OR REPLACE INTO jobs (${
      JOB_COLUMNS.join(", ")
    }) VALUES (${jobPlaceholders})`;
    const putSchedule = `INSERT OR REPLACE INTO schedules (${
      SCHEDULE_COLUMNS.join(", ")
    }) VALUES (${schedPlaceholders})`;
    const putDelivery = `INSERT OR REPLACE INTO deliveries (${
      DELIVERY_COLUMNS.join(", ")
    }) VALUES (${DELIVERY_COLUMNS.map(() => "?").join(", ")})`;
    const s = (sql: string) => this.#stmt(sql);
    return {
      getJob: (id) => {
        const row = s("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
        return row ? jobFromRow(row) : null;
      },
      insertJob: (make) => {
        const probe = make(0);
        const { lastInsertRowid } = s(
          "INSERT INTO jobs (kind, status, attempts, max_attempts, params, created_at, run_after, updated_at) VALUES (?, 'pending', 0, 1, '{}', 0, 0, 0)",
        ).run(probe.kind);
        const job = make(Number(lastInsertRowid));
        s(putJob).run(...jobToRow(job));
        return job;
      },
      putJob: (job) => void s(putJob).run(...jobToRow(job)),
      removeJob: (id) => void s("DELETE FROM jobs WHERE id = ?").run(id),
      findClaimable: (now, id) => {
        const sql = "SELECT * FROM jobs WHERE ((status = 'pending' AND run_after <= ?) OR " +
          "(status = 'running' AND lease_expires_at <= ? AND attempts < max_attempts AND cancel_requested = 0))" +
          (id === undefined ? "" : " AND id = ?") + " ORDER BY run_after, id LIMIT 1";
        const args: SQLInputValue[] = id === undefined ? [now, now] : [now, now, id];
        const row = s(sql).get(...args) as Row | undefined;
        return row ? jobFromRow(row) : null;
      },
      findAbandoned: (now) =>
        (s(
          "SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at <= ? AND (attempts >= max_attempts OR cancel_requested = 1)",
        )
          .all(now) as Row[]).map(jobFromRow),
      queryJobs: (filter, page: PageOptions) => {
        const w = where(filter);
        const cursor = decodeCursor(page.cursor);
        const sql = `SELECT * FROM jobs WHERE ${w.sql}${
          cursor === null ? "" : " AND id < ?"
        } ORDER BY id DESC LIMIT ? OFFSET ?`;
        const args = [
          ...w.args,
          ...(cursor === null ? [] : [cursor]),
          Math.min(page.limit, 2 ** 31),
          page.offset ?? 0,
        ];
        return (s(sql).all(...args) as Row[]).map(jobFromRow);
      },
      countJobs: (filter) => {
        const w = where(filter);
        return Number((s(`SELECT COUNT(*) AS n FROM jobs WHERE ${w.sql}`).get(...w.args) as Row).n);
      },
      countByKindStatus: () =>
        (s("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status").all() as Row[])
          .map((r) => ({ kind: r.kind as string, status: r.status as JobStatus, n: Number(r.n) })),
      getSchedule: (id) => {
        const row = s("SELECT * FROM schedules WHERE id = ?").get(id) as Row | undefined;
        return row ? scheduleFromRow(row) : null;
      },
      insertSchedule: (make) => {
        const { lastInsertRowid } = s(
          "INSERT INTO schedules (client_name, cron, timezone, label, enabled, retention, created_at, updated_at) VALUES ('', '', '', '', 0, '{}', 0, 0)",
        ).run();
        const schedule = make(Number(lastInsertRowid));
        s(putSchedule).run(...scheduleToRow(schedule));
        return schedule;
      },
      putSchedule: (sched) => void s(putSchedule).run(...scheduleToRow(sched)),
      removeSchedule: (id) => void s("DELETE FROM schedules WHERE id = ?").run(id),
      allSchedules: () =>
        (s("SELECT * FROM schedules ORDER BY id").all() as Row[]).map(scheduleFromRow),
      dueSchedules: (now) =>
        (s(
          "SELECT * FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? ORDER BY next_run_at, id",
        )
          .all(now) as Row[]).map(scheduleFromRow),
      nullScheduleRefs: (id) =>
        void s("UPDATE jobs SET schedule_id = NULL WHERE schedule_id = ?").run(id),
      getDelivery: (id) => {
        const row = s("SELECT * FROM deliveries WHERE id = ?").get(id) as Row | undefined;
        return row ? deliveryFromRow(row) : null;
      },
      findDelivery: (channel, key) => {
        const row = s("SELECT * FROM deliveries WHERE channel = ? AND dedupe_key = ?").get(
          channel,
          key,
        ) as Row | undefined;
        return row ? deliveryFromRow(row) : null;
      },
      insertDelivery: (make) => {
        const probe = make(0);
        const { lastInsertRowid } = s(
          "INSERT INTO deliveries (channel, event, dedupe_key, payload, max_attempts, status, attempts, next_attempt_at, created_at, updated_at) VALUES (?, '', ?, '{}', 1, 'pending', 0, 0, 0, 0)",
        ).run(probe.channel, probe.dedupe_key);
        const d = make(Number(lastInsertRowid));
        s(putDelivery).run(...deliveryValues(d));
        return d;
      },
      putDelivery: (d) => void s(putDelivery).run(...deliveryValues(d)),
      dueDeliveries: (now, limit) =>
        (s(
          "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        ).all(now, limit) as Row[]).map(deliveryFromRow),
      queryDeliveries: (filter, limit) => {
        const parts: string[] = [];
        const args: SQLInputValue[] = [];
        if (filter.status !== undefined) (parts.push("status = ?"), args.push(filter.status));
        if (filter.channel !== undefined) (parts.push("channel = ?"), args.push(filter.channel));
        if (filter.before_id !== undefined) (parts.push("id < ?"), args.push(filter.before_id));
        const sql = `SELECT * FROM deliveries WHERE ${
          parts.length ? parts.join(" AND ") : "1=1"
        } ORDER BY id DESC LIMIT ?`;
        return (s(sql).all(...args, limit) as Row[]).map(deliveryFromRow);
      },
      countDeliveries: () =>
        (s(
          "SELECT channel, status, attempts > 0 AS retried, COUNT(*) AS n FROM deliveries GROUP BY channel, status, attempts > 0",
        ).all() as Row[]).map((r) => ({
          channel: r.channel as string,
          status: r.status as DeliveryStatus,
          retried: Number(r.retried) === 1,
          n: Number(r.n),
        })),
      removeDeliveriesBefore: (before) =>
        Number(
          s(
            "DELETE FROM deliveries WHERE status IN ('delivered', 'dead') AND updated_at < ?",
          ).run(before).changes,
        ),
    };
  }
}

function migrate(db: DatabaseSync): void {
  // Re-read the version under the write lock: two processes may open a new store at once.
  for (;;) {
    db.exec("BEGIN IMMEDIATE");
    try {
      const version = Number((db.prepare("PRAGMA user_version").get() as Row).user_version);
      if (version > MIGRATIONS.length) {
        throw new Error(
          `the store was written by a newer cairn (schema ${version}, this one knows ${MIGRATIONS.length})`,
        );
      }
      if (version === MIGRATIONS.length) {
        db.exec("COMMIT");
        return;
      }
      db.exec(MIGRATIONS[version]);
      db.exec(`PRAGMA user_version = ${version + 1}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}

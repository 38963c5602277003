import { deliveryValues } from "./delivery_row.ts";
import postgres from "postgres";
import { CairnError, toError } from "../errors.ts";
import * as state from "../jobs/state.ts";
import type {
  Job,
  JobStatus,
  NewJob,
  NewSchedule,
  Progress,
  Schedule,
  SchedulePatch,
} from "../jobs/types.ts";
import { JOB_STATUSES } from "../jobs/types.ts";
import {
  type Delivery,
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type NewDelivery,
  settleDelivery,
} from "../notify/delivery.ts";
import { logger } from "../log.ts";
import { redact, redactUrl } from "../redact.ts";
import { type BaseOptions, decodeCursor, encodeCursor } from "./base.ts";
import {
  JOB_COLUMNS,
  JOBS_CHANNEL,
  jobWhere,
  MIGRATIONS,
  SCHEDULE_COLUMNS,
  SQL,
} from "./postgres_sql.ts";
import {
  type ClaimOptions,
  type DeliveryFilter,
  type JobFilter,
  type JobPage,
  type JobStore,
  KeyTakenError,
  type Lease,
  LeaseLostError,
  type NodeInfo,
  type NodeRegistration,
  type PageOptions,
  type ScheduleFiring,
  type StoreStats,
} from "./store.ts";
import { parseStoreUser, type StoreUseLock, type StoreUser } from "./use_lock.ts";

type Sql = postgres.Sql;

/** A busy queue settles abandoned jobs at most this often (ms); an idle one on every claim. */
const SETTLE_EVERY_MS = 1000;
/** At most this many held rows are remembered (#held); the oldest go first. */
const HELD_MAX = 10_000;
type Tx = postgres.TransactionSql;
type Row = Record<string, unknown>;
type Runner = Sql | Tx;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const jsonText = (
  v: unknown,
): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

function jobFromRow(r: Row): Job {
  return {
    id: num(r.id),
    kind: r.kind as Job["kind"],
    client_name: r.client_name as string | null,
    key: r.key as string | null,
    label: r.label as string | null,
    status: r.status as JobStatus,
    attempts: num(r.attempts),
    max_attempts: num(r.max_attempts),
    progress: (r.progress ?? null) as Progress | null,
    error: r.error as string | null,
    schedule_id: numOrNull(r.schedule_id),
    params: (r.params ?? {}) as Job["params"],
    result: (r.result ?? null) as Record<string, unknown> | null,
    created_at: num(r.created_at),
    started_at: numOrNull(r.started_at),
    finished_at: numOrNull(r.finished_at),
    run_after: num(r.run_after),
    updated_at: num(r.updated_at),
    lease_owner: r.lease_owner as string | null,
    lease_token: r.lease_token as string | null,
    lease_expires_at: numOrNull(r.lease_expires_at),
    cancel_requested: r.cancel_requested === true,
  };
}

/** The JOB_COLUMNS values of a job, in order (JSON columns as text). */
function jobArgs(j: Job): unknown[] {
  const json = new Set(["progress", "params", "result"]);
  return JOB_COLUMNS.map((c) => {
    const v = j[c];
    if (json.has(c)) return jsonText(v);
    return v;
  });
}

function scheduleFromRow(r: Row): Schedule {
  return {
    id: num(r.id),
    client_name: r.client_name as string,
    cron: r.cron as string,
    timezone: r.timezone as string,
    label: r.label as string,
    enabled: r.enabled === true,
    retention: (r.retention ?? {}) as Schedule["retention"],
    next_run_at: numOrNull(r.next_run_at),
    last_run_at: numOrNull(r.last_run_at),
    last_job_id: numOrNull(r.last_job_id),
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
    kind: ((r.kind as string | null) ?? "backup") as Schedule["kind"],
    config_owned: r.config_owned === true,
    auto_prune: r.auto_prune !== false,
  };
}

function deliveryFromRow(r: Row): Delivery {
  return {
    id: num(r.id),
    channel: r.channel as string,
    event: r.event as string,
    dedupe_key: r.dedupe_key as string,
    payload: (r.payload ?? {}) as Record<string, unknown>,
    max_attempts: num(r.max_attempts),
    status: r.status as DeliveryStatus,
    attempts: num(r.attempts),
    next_attempt_at: num(r.next_attempt_at),
    last_error: r.last_error as string | null,
    created_at: num(r.created_at),
    updated_at: num(r.updated_at),
    delivered_at: numOrNull(r.delivered_at),
  };
}

function scheduleArgs(s: Omit<Schedule, "id">): unknown[] {
  return SCHEDULE_COLUMNS.map((c) => (c === "retention" ? JSON.stringify(s.retention) : s[c]));
}

export interface PostgresOptions extends BaseOptions {
  /** Connections in the pool (default 10). */
  max?: number;
}

/**
 * The PostgreSQL job store, shared by several daemons (issue 24). Each method is one
 * statement or one short transaction; state changes go through the pure state
 * machine (jobs/state.ts) on a row locked FOR UPDATE, except the hot paths (claim,
 * renew) which are single statements. Statements live in postgres_sql.ts.
 *
 * The clock: the injected one when given (tests); else the database's clock, read at
 * open and on each node heartbeat and followed with the local monotonic clock, so
 * every node judges lease expiry by one clock.
 */
export class PostgresStore implements JobStore {
  readonly kind = "postgres" as const;
  readonly #sql: Sql;
  readonly #now: () => number;
  #offset = 0;
  #listener: { unlisten: () => Promise<void> } | null = null;
  readonly #wakeups = new Set<(client: string | null) => void>();
  #closed = false;
  /** When abandoned jobs were last settled (store clock, ms). */
  #settledAt = -Infinity;
  /**
   * The row (and its version, xmin) of each job this store last handed out under a
   * lease, from the claim or a renewal: the finish of a held job tries its
   * compare-and-set against it first, in one statement, instead of reading the row
   * again (see #owned). Only a hint: a stale entry fails the compare and is re-read.
   */
  readonly #held = new Map<number, { version: string; job: Job }>();
  /** A client of one connection, for a session of its own (the use lock). */
  readonly #connectOne: () => Sql;

  private constructor(sql: Sql, options: PostgresOptions, connectOne: () => Sql) {
    this.#sql = sql;
    this.#connectOne = connectOne;
    this.#now = options.now ?? (() => Date.now() + this.#offset);
  }

  /**
   * Connects, runs pending migrations (serialized across daemons by an advisory
   * lock) and syncs the clock with the database. STORE_UNAVAILABLE when the server
   * cannot be reached; the URL in the message has its password masked.
   */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresStore> {
    const connect = (max: number) =>
      postgres(url, {
        max,
        onnotice: () => {},
        connect_timeout: 10,
        // The driver's own logging would print connection parameters.
        debug: false,
        connection: {
          application_name: "cairn",
          // Statements are prepared once per connection (see #q); a generic plan could
          // not use the claim's parameters (the id, the clients) to pick its index.
          plan_cache_mode: "force_custom_plan",
        },
      });
    const sql = connect(options.max ?? 10);
    const store = new PostgresStore(sql, options, () => connect(1));
    try {
      await store.#migrate();
      await store.syncClock();
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      if (error instanceof CairnError) throw error;
      throw new CairnError(
        "STORE_UNAVAILABLE",
        `Cannot open the PostgreSQL job store ${redactUrl(url)}: ${redact(toError(error).message)}`,
        { cause: error },
      );
    }
    return store;
  }

  /** Migrations in one transaction under pg_advisory_xact_lock: two daemons starting together wait in turn. */
  async #migrate(): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx.unsafe(SQL.lockMigrations);
      await tx.unsafe(SQL.createMigrations);
      const [{ version }] = await tx.unsafe(SQL.migrationVersion);
      if (version > MIGRATIONS.length) {
        throw new CairnError(
          "STORE_CORRUPT",
          `The PostgreSQL job store was written by a newer cairn (schema ${version}, this one knows ${MIGRATIONS.length})`,
        );
      }
      for (let v = version; v < MIGRATIONS.length; v++) {
        await tx.unsafe(MIGRATIONS[v]);
        await tx.unsafe(SQL.recordMigration, [v + 1]);
      }
    });
  }

  /** Re-reads the database clock (ms). Half the round trip is taken as the reading's delay. */
  async syncClock(): Promise<void> {
    const t0 = Date.now();
    const [{ now }] = await this.#sql.unsafe(SQL.dbNow);
    const t1 = Date.now();
    this.#offset = Math.round(Number(now) - (t0 + t1) / 2);
  }

  now(): number {
    return this.#now();
  }

  // -- plumbing ------------------------------------------------------------------------

  /**
   * Runs one statement. With parameters it is a named prepared statement, parsed once
   * per connection: the driver's default for `unsafe` (unnamed, prepare: false) costs
   * an extra round trip on every call (Parse/Describe, then wait for the parameter
   * types, then Bind/Execute) and a parse each time. Every statement text here is one
   * of a bounded set (the SQL table, and jobWhere's filter shapes).
   */
  #q(runner: Runner, statement: string, args: unknown[] = []): Promise<Row[]> {
    return runner.unsafe(
      statement,
      args as postgres.ParameterOrJSON<never>[],
      { prepare: args.length > 0 },
    ) as unknown as Promise<
      Row[]
    >;
  }

  #tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.#sql.begin(fn) as Promise<T>;
  }

  async #lock(tx: Tx, id: number): Promise<Job | null> {
    const [row] = await this.#q(tx, SQL.lockJob, [id]);
    return row ? jobFromRow(row) : null;
  }

  async #put(tx: Runner, job: Job): Promise<void> {
    await this.#q(tx, SQL.putJob, [job.id, ...jobArgs(job)]);
  }

  /** A read-modify-write of one job under its row lock; `fn` may throw to abort. */
  #mutate(
    id: number,
    fn: (job: Job | null, now: number, tx: Tx) => Promise<Job> | Job,
  ): Promise<Job> {
    return this.#tx(async (tx) => {
      const job = await fn(await this.#lock(tx, id), this.#now(), tx);
      await this.#put(tx, job);
      return job;
    });
  }

  /**
   * A transition of a job this caller holds under `token`, as an optimistic
   * read-then-compare-and-set (two statements, one commit: the hot path of every job's
   * end). A concurrent change (a renewal, a cancel request) makes it read again.
   */
  async #owned(id: number, token: string, fn: (job: Job, now: number) => Job): Promise<Job> {
    let known = this.#held.get(id);
    this.#held.delete(id);
    for (;;) {
      if (!known || known.job.lease_token !== token) {
        const [row] = await this.#q(this.#sql, SQL.getJobVersioned, [id]);
        known = row ? { version: row.row_version as string, job: jobFromRow(row) } : undefined;
      }
      const job = known?.job;
      if (!job || job.status !== "running" || job.lease_token !== token) {
        throw new LeaseLostError(id);
      }
      const next = fn(job, this.#now());
      const done = await this.#q(this.#sql, SQL.putJobIfUnchanged, [
        id,
        known!.version,
        token,
        ...jobArgs(next),
      ]);
      if (done.length > 0) return next;
      known = undefined; // changed meanwhile (a cancel request, a renewal): read it again
    }
  }

  /** Remembers the row of a job handed out under a lease (see #held). */
  #hold(row: Row): Job {
    const job = jobFromRow(row);
    // Bounded: an attempt that loses its lease without a finish leaves its entry behind.
    if (this.#held.size >= HELD_MAX) this.#held.delete(this.#held.keys().next().value!);
    this.#held.set(job.id, { version: row.row_version as string, job });
    return job;
  }

  static #notFound(id: number): never {
    throw new CairnError("JOB_NOT_FOUND", `Job ${id} not found`);
  }

  // -- jobs ----------------------------------------------------------------------------

  async enqueue(input: NewJob, options: { claimAs?: Lease } = {}): Promise<Job> {
    const now = this.#now();
    let job = state.newJob(0, input, now);
    if (options.claimAs) {
      job = state.claim(
        job,
        now,
        options.claimAs.owner,
        crypto.randomUUID(),
        options.claimAs.leaseMs,
      );
    }
    const [row] = await this.#q(this.#sql, SQL.insertJob, jobArgs(job));
    return jobFromRow(row);
  }

  async get(id: number): Promise<Job | null> {
    const [row] = await this.#q(this.#sql, SQL.getJob, [id]);
    return row ? jobFromRow(row) : null;
  }

  async list(filter: JobFilter, page: PageOptions): Promise<JobPage> {
    const limit = Math.max(1, Math.min(page.limit, 1000));
    const rows = await this.#query(filter, { ...page, limit: limit + 1 });
    const jobs = rows.slice(0, limit);
    const more = rows.length > limit;
    return { jobs, next_cursor: more ? encodeCursor(jobs[jobs.length - 1].id) : null };
  }

  async #query(
    filter: JobFilter,
    page: PageOptions,
    runner: Runner = this.#sql,
    lock = false,
  ): Promise<Job[]> {
    const cursor = decodeCursor(page.cursor);
    const w = jobWhere(filter);
    const args = [...w.args];
    let sql = `SELECT * FROM cairn_jobs WHERE ${w.sql}`;
    if (cursor !== null) {
      args.push(cursor);
      sql += ` AND id < $${args.length}::bigint`;
    }
    args.push(Math.min(page.limit, 2 ** 53 - 1), page.offset ?? 0);
    sql += ` ORDER BY id DESC LIMIT $${args.length - 1}::bigint OFFSET $${args.length}::bigint`;
    if (lock) sql += " FOR UPDATE";
    return (await this.#q(runner, sql, args)).map(jobFromRow);
  }

  async count(filter: JobFilter): Promise<number> {
    const w = jobWhere(filter);
    const [row] = await this.#q(
      this.#sql,
      `SELECT count(*)::bigint AS n FROM cairn_jobs WHERE ${w.sql}`,
      w.args,
    );
    return num(row.n);
  }

  async stats(): Promise<StoreStats> {
    const zero = () =>
      Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const stats: StoreStats = { by_status: zero(), by_kind: {}, total: 0 };
    for (const r of await this.#q(this.#sql, SQL.countByKindStatus)) {
      const status = r.status as JobStatus, n = num(r.n);
      stats.by_status[status] += n;
      (stats.by_kind[r.kind as string] ??= zero())[status] += n;
      stats.total += n;
    }
    return stats;
  }

  /**
   * Settles abandoned jobs (lease expired, nothing left to try), then claims the
   * oldest due job in one UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED).
   * `clients`: only jobs of these clients (or of no client).
   */
  async claim(lease: Lease, options: ClaimOptions = {}): Promise<Job | null> {
    return (await this.claimBatch(lease, 1, options))[0] ?? null;
  }

  /**
   * Settles abandoned jobs (lease expired, nothing left to try) now and then, and
   * claims up to `limit` of the oldest due jobs in one statement (SQL.claim), oldest
   * first. `clients`: only jobs of these clients (or of no client).
   */
  async claimBatch(lease: Lease, limit: number, options: ClaimOptions = {}): Promise<Job[]> {
    const now = this.#now();
    if (now - this.#settledAt >= SETTLE_EVERY_MS) await this.#settleAbandoned(now);
    const rows = await this.#q(this.#sql, SQL.claim, [
      now,
      lease.owner,
      lease.leaseMs,
      options.id ?? null,
      options.clients ? JSON.stringify(options.clients) : null,
      Math.max(1, Math.floor(limit)),
    ]);
    if (rows.length === 0) {
      // Nothing to claim: a good moment to settle what is abandoned (and it shows at once).
      await this.#settleAbandoned(now);
      return [];
    }
    return rows.map((r) => this.#hold(r)).sort((a, b) => a.run_after - b.run_after || a.id - b.id);
  }

  /** Jobs whose lease expired with nothing left to try become failed or cancelled. */
  async #settleAbandoned(now: number): Promise<void> {
    this.#settledAt = now;
    const abandoned = await this.#q(this.#sql, SQL.abandoned, [now]);
    for (const { id } of abandoned) {
      await this.#tx(async (tx) => {
        const job = await this.#lock(tx, num(id));
        const settled = job && state.settleAbandoned(job, this.#now());
        if (settled) await this.#put(tx, settled);
      });
    }
  }

  async renew(
    id: number,
    token: string,
    leaseMs: number,
    patch: { progress?: Progress } = {},
  ): Promise<Job> {
    const [row] = await this.#q(this.#sql, SQL.renew, [
      id,
      token,
      this.#now(),
      leaseMs,
      patch.progress === undefined ? null : JSON.stringify(patch.progress),
    ]);
    if (!row) {
      this.#held.delete(id);
      throw new LeaseLostError(id);
    }
    return this.#hold(row);
  }

  update(id: number, token: string, patch: { progress?: Progress; key?: string }): Promise<Job> {
    this.#held.delete(id);
    return this.#mutate(id, async (job, now, tx) => {
      if (!job || job.status !== "running" || job.lease_token !== token) {
        throw new LeaseLostError(id);
      }
      if (patch.key !== undefined && job.kind === "backup") {
        await this.#q(tx, SQL.lockKey, [patch.key]);
        const [holder] = await this.#q(tx, SQL.keyHolder, [patch.key, id]);
        if (holder) throw new KeyTakenError(patch.key, num(holder.id));
      }
      return { ...job, ...patch, updated_at: now };
    });
  }

  complete(id: number, token: string, result: Record<string, unknown>): Promise<Job> {
    return this.#owned(id, token, (job, now) => state.complete(job, now, result));
  }

  fail(
    id: number,
    token: string,
    error: string,
    options: { retryDelayMs: number; permanent?: boolean; result?: Record<string, unknown> },
  ): Promise<Job> {
    return this.#owned(id, token, (job, now) => state.fail(job, now, error, options));
  }

  markCancelled(id: number, token: string): Promise<Job> {
    return this.#owned(id, token, (job, now) => state.markCancelled(job, now));
  }

  release(id: number, token: string): Promise<Job> {
    return this.#owned(id, token, (job, now) => state.release(job, now));
  }

  async expireLeasesOf(isDead: (owner: string) => boolean): Promise<Job[]> {
    const rows = await this.#q(this.#sql, SQL.runningWithOwner);
    const out: Job[] = [];
    for (const r of rows) {
      if (!isDead(r.lease_owner as string)) continue;
      const expired = await this.#tx(async (tx) => {
        const job = await this.#lock(tx, num(r.id));
        const now = this.#now();
        // Re-checked under the lock: the job may have finished or changed hands since.
        if (!job || job.status !== "running" || job.lease_token !== r.lease_token) return null;
        if (job.lease_expires_at !== null && job.lease_expires_at <= now) return null;
        const next = state.expireLease(job, now);
        await this.#put(tx, next);
        return next;
      });
      if (expired) out.push(expired);
    }
    return out;
  }

  settleAbandoned(
    id: number,
    token: string,
    outcome: { result: Record<string, unknown> } | { error: string },
  ): Promise<Job> {
    return this.#mutate(id, (job, now) => {
      if (!job || job.lease_token !== token || !state.isLeaseExpired(job, now)) {
        throw new LeaseLostError(id);
      }
      return state.settleFromRepository(job, now, outcome);
    });
  }

  requestCancel(id: number): Promise<Job> {
    return this.#mutate(
      id,
      (job, now) => state.requestCancel(job ?? PostgresStore.#notFound(id), now),
    );
  }

  requeue(id: number): Promise<Job> {
    return this.#mutate(id, (job, now) => state.requeue(job ?? PostgresStore.#notFound(id), now));
  }

  requeueMany(filter: Omit<JobFilter, "status">): Promise<number> {
    return this.#tx(async (tx) => {
      const failed = await this.#query(
        { ...filter, status: "failed" },
        { limit: 2 ** 53 - 1 },
        tx,
        true,
      );
      const now = this.#now();
      for (const job of failed) await this.#put(tx, state.requeue(job, now));
      return failed.length;
    });
  }

  async deleteJob(id: number, options: { onlyStatus?: JobStatus } = {}): Promise<boolean> {
    const args: unknown[] = [id];
    let sql = "DELETE FROM cairn_jobs WHERE id = $1::bigint";
    if (options.onlyStatus) {
      args.push(options.onlyStatus);
      sql += " AND status = $2::text";
    }
    const rows = await this.#q(this.#sql, sql + " RETURNING id", args);
    return rows.length > 0;
  }

  async deleteJobs(filter: JobFilter): Promise<number> {
    const w = jobWhere(filter);
    const rows = await this.#q(
      this.#sql,
      `DELETE FROM cairn_jobs WHERE ${w.sql} RETURNING id`,
      w.args,
    );
    return rows.length;
  }

  // -- schedules -----------------------------------------------------------------------

  async createSchedule(input: NewSchedule): Promise<Schedule> {
    const now = this.#now();
    const [row] = await this.#q(
      this.#sql,
      SQL.insertSchedule,
      scheduleArgs({
        ...input,
        kind: input.kind ?? "backup",
        config_owned: input.config_owned ?? false,
        auto_prune: input.auto_prune ?? true,
        last_run_at: null,
        last_job_id: null,
        created_at: now,
        updated_at: now,
      }),
    );
    return scheduleFromRow(row);
  }

  async getSchedule(id: number): Promise<Schedule | null> {
    const [row] = await this.#q(this.#sql, SQL.getSchedule, [id]);
    return row ? scheduleFromRow(row) : null;
  }

  async listSchedules(): Promise<Schedule[]> {
    return (await this.#q(this.#sql, SQL.allSchedules)).map(scheduleFromRow);
  }

  updateSchedule(id: number, patch: SchedulePatch): Promise<Schedule> {
    return this.#tx(async (tx) => {
      const [row] = await this.#q(tx, SQL.lockSchedule, [id]);
      if (!row) throw new CairnError("SCHEDULE_NOT_FOUND", `Schedule ${id} not found`);
      const next = { ...scheduleFromRow(row), ...patch, id, updated_at: this.#now() };
      await this.#q(tx, SQL.putSchedule, [id, ...scheduleArgs(next)]);
      return next;
    });
  }

  deleteSchedule(id: number): Promise<boolean> {
    return this.#tx(async (tx) => {
      const [row] = await this.#q(tx, SQL.lockSchedule, [id]);
      if (!row) return false;
      await this.#q(tx, SQL.nullScheduleRefs, [id]);
      await this.#q(tx, SQL.deleteSchedule, [id]);
      return true;
    });
  }

  fireDueSchedules(fire: (s: Schedule) => ScheduleFiring): Promise<Job[]> {
    return this.#tx(async (tx) => {
      const now = this.#now();
      const jobs: Job[] = [];
      for (const row of await this.#q(tx, SQL.lockDueSchedules, [now])) {
        const schedule = scheduleFromRow(row);
        const firing = fire(schedule);
        const [inserted] = await this.#q(
          tx,
          SQL.insertJob,
          jobArgs(state.newJob(0, { ...firing.job, schedule_id: schedule.id }, now)),
        );
        const job = jobFromRow(inserted);
        await this.#q(tx, SQL.putSchedule, [
          schedule.id,
          ...scheduleArgs({
            ...schedule,
            next_run_at: firing.next_run_at,
            last_run_at: now,
            last_job_id: job.id,
            updated_at: now,
          }),
        ]);
        jobs.push(job);
      }
      return jobs;
    });
  }

  importRecords(
    records: { jobs: Job[]; schedules: Schedule[]; deliveries?: Delivery[] },
  ): Promise<void> {
    return this.#tx(async (tx) => {
      // Sent without waiting for each answer: the driver pipelines them on the one connection.
      const send = async (statements: Array<[string, unknown[]]>) => {
        for (let i = 0; i < statements.length; i += 1000) {
          await Promise.all(
            statements.slice(i, i + 1000).map(([sql, args]) => this.#q(tx, sql, args)),
          );
        }
      };
      await send(records.schedules.map((s) => [SQL.importSchedule, [s.id, ...scheduleArgs(s)]]));
      await send(records.jobs.map((j) => [SQL.importJob, [j.id, ...jobArgs(j)]]));
      await send((records.deliveries ?? []).map((d) => [SQL.importDelivery, deliveryValues(d)]));
      await this.#q(tx, SQL.resetScheduleIds);
      await this.#q(tx, SQL.resetJobIds);
      await this.#q(tx, SQL.resetDeliveryIds);
    });
  }

  // -- the notification outbox ----------------------------------------------------------

  /**
   * INSERT … ON CONFLICT DO NOTHING on (channel, dedupe_key), then the existing row
   * when nothing was inserted: two daemons detecting one event add it once.
   */
  async enqueueDelivery(input: NewDelivery): Promise<{ delivery: Delivery; created: boolean }> {
    for (;;) {
      const [row] = await this.#q(this.#sql, SQL.insertDelivery, [
        input.channel,
        input.event,
        input.dedupe_key,
        JSON.stringify(input.payload),
        input.max_attempts,
        this.#now(),
      ]);
      if (row) return { delivery: deliveryFromRow(row), created: true };
      const [existing] = await this.#q(this.#sql, SQL.findDelivery, [
        input.channel,
        input.dedupe_key,
      ]);
      // Deleted between the two statements (deleteDeliveriesBefore): insert again.
      if (existing) return { delivery: deliveryFromRow(existing), created: false };
    }
  }

  /** One UPDATE over the oldest due rows taken FOR UPDATE SKIP LOCKED (SQL.claimDeliveries). */
  async claimDeliveries(limit: number, leaseMs: number): Promise<Delivery[]> {
    const rows = await this.#q(this.#sql, SQL.claimDeliveries, [
      this.#now(),
      leaseMs,
      Math.max(1, Math.floor(limit)),
    ]);
    return rows.map(deliveryFromRow).sort((a, b) =>
      a.next_attempt_at - b.next_attempt_at || a.id - b.id
    );
  }

  settleDelivery(
    id: number,
    outcome: { ok: true } | { ok: false; error: string; retryDelayMs: number },
  ): Promise<Delivery | null> {
    return this.#tx(async (tx) => {
      const [row] = await this.#q(tx, SQL.lockDelivery, [id]);
      if (!row) return null;
      const d = deliveryFromRow(row);
      const next = settleDelivery(d, this.#now(), outcome);
      if (next !== d) {
        await this.#q(tx, SQL.putDelivery, [
          id,
          next.status,
          next.attempts,
          next.next_attempt_at,
          next.last_error,
          next.updated_at,
          next.delivered_at,
        ]);
      }
      return next;
    });
  }

  async listDeliveries(filter: DeliveryFilter, limit: number): Promise<Delivery[]> {
    const rows = await this.#q(this.#sql, SQL.listDeliveries, [
      filter.status ?? null,
      filter.channel ?? null,
      Math.max(1, Math.min(limit, 1000)),
      filter.before_id ?? null,
    ]);
    return rows.map(deliveryFromRow);
  }

  async deliveryCounts(): Promise<
    Record<string, Record<DeliveryStatus, number> & { failing: number }>
  > {
    const out: Record<string, Record<DeliveryStatus, number> & { failing: number }> = {};
    for (const r of await this.#q(this.#sql, SQL.countDeliveries)) {
      const c = out[r.channel as string] ??= {
        ...Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, 0])) as Record<
          DeliveryStatus,
          number
        >,
        failing: 0,
      };
      const status = r.status as DeliveryStatus, n = num(r.n);
      c[status] += n;
      if (status === "pending" && r.retried === true) c.failing += n;
    }
    return out;
  }

  async deleteDeliveriesBefore(before: number): Promise<number> {
    return (await this.#q(this.#sql, SQL.deleteDeliveriesBefore, [before])).length;
  }

  // -- nodes and wake-ups --------------------------------------------------------------

  /**
   * Calls `fn` whenever a job becomes pending anywhere (LISTEN on a connection of its
   * own, which the driver re-establishes after a drop; notifications sent while it is
   * down are lost, so callers keep polling as the fallback). Returns an unsubscribe.
   */
  async onJobPending(fn: (client: string | null) => void): Promise<() => void> {
    this.#wakeups.add(fn);
    if (!this.#listener && !this.#closed) {
      this.#listener = await this.#sql.listen(JOBS_CHANNEL, (payload) => {
        for (const w of this.#wakeups) w(payload === "" ? null : payload);
      });
    }
    return () => void this.#wakeups.delete(fn);
  }

  /**
   * Takes the store's use lock (store/use_lock.ts) for `user`, shared or exclusive, on a
   * connection of its own kept until release (a session-level advisory lock lasts as long
   * as its session). When it is held the other way: the holders, as they described
   * themselves, and nothing is kept.
   */
  async holdUse(
    user: StoreUser,
    exclusive: boolean,
  ): Promise<StoreUseLock | { holders: StoreUser[] }> {
    // A client of its own rather than a reserved pool connection: when its session is
    // cut, a new client opens a new session, which simply does not hold the lock (the
    // driver's reserved connections crash on a closed socket, and a client whose
    // session was cut can hang on its second statement, so it is replaced, not reused).
    let conn = this.#connectOne();
    let broken = false;
    try {
      const [{ ok }] = await conn.unsafe(exclusive ? SQL.tryUseExclusive : SQL.tryUseShared);
      if (!ok) {
        const rows = await this.#q(this.#sql, SQL.storeUsers);
        await conn.end({ timeout: 5 });
        return {
          holders: rows.flatMap((r) => parseStoreUser(r.holder) ?? []),
        };
      }
      await conn.unsafe(SQL.putStoreUser, [JSON.stringify(user)]);
    } catch (error) {
      await conn.end({ timeout: 1 }).catch(() => {});
      throw error;
    }
    let released = false;
    // A session-level lock ends only with an unlock or its session: held now (asked on
    // the same session) means held all along.
    const held = async () => {
      if (broken) return false;
      try {
        const [{ n }] = await conn.unsafe(SQL.useHeld);
        if (Number(n) > 0) return true;
      } catch { /* the session is gone, and the lock with it */ }
      broken = true;
      return false;
    };
    return {
      held,
      keep: async () => {
        if (await held()) return "held";
        const old = conn;
        conn = this.#connectOne();
        broken = false;
        void old.end({ timeout: 0 }).catch(() => {});
        const [{ ok }] = await conn.unsafe(exclusive ? SQL.tryUseExclusive : SQL.tryUseShared);
        if (!ok) {
          broken = true;
          return "refused";
        }
        await conn.unsafe(SQL.putStoreUser, [JSON.stringify(user)]);
        return "retaken";
      },
      release: async () => {
        if (released) return;
        released = true;
        // Ending the session releases its advisory locks.
        await conn.end({ timeout: 5 }).catch((error) =>
          logger.debug?.("Could not close the store's use lock session", {
            error: toError(error).message,
          })
        );
      },
    };
  }

  /** Records (or refreshes) a node: its name, lease owner, clients and heartbeat. */
  async registerNode(node: NodeRegistration): Promise<void> {
    await this.#q(this.#sql, SQL.upsertNode, [
      node.name,
      node.owner,
      JSON.stringify(node.clients),
      this.#now(),
    ]);
  }

  /** The node's heartbeat; also re-reads the database clock. */
  async heartbeatNode(node: Pick<NodeRegistration, "name" | "owner">): Promise<void> {
    await this.syncClock();
    await this.#q(this.#sql, SQL.nodeHeartbeat, [node.name, node.owner, this.#now()]);
  }

  async nodeStopped(node: Pick<NodeRegistration, "name" | "owner">): Promise<void> {
    await this.#q(this.#sql, SQL.nodeStopped, [node.name, node.owner, this.#now()]);
  }

  /** Every node with its heartbeat and the jobs its owner holds now. */
  async nodes(): Promise<NodeInfo[]> {
    const running = new Map<string, number[]>();
    for (const r of await this.#q(this.#sql, SQL.runningByOwner)) {
      if (r.lease_owner) running.set(r.lease_owner as string, (r.ids as unknown[]).map(num));
    }
    return (await this.#q(this.#sql, SQL.allNodes)).map((r) => ({
      name: r.name as string,
      owner: r.owner as string,
      clients: r.clients as string[],
      started_at: num(r.started_at),
      heartbeat_at: num(r.heartbeat_at),
      stopped_at: numOrNull(r.stopped_at),
      running_job_ids: running.get(r.owner as string) ?? [],
    }));
  }

  /** Pending jobs per client (for "no node can run client X"). */
  async pendingByClient(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const r of await this.#q(this.#sql, SQL.pendingClients)) {
      out.set(r.client_name as string, num(r.n));
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeups.clear();
    try {
      await this.#listener?.unlisten();
    } catch (error) {
      logger.debug?.("Could not unlisten", { error: toError(error).message });
    }
    await this.#sql.end({ timeout: 5 });
  }
}

import { CairnError } from "../errors.ts";
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
  claimDelivery,
  type Delivery,
  DELIVERY_STATUSES,
  type DeliveryStatus,
  type NewDelivery,
  newDelivery,
  settleDelivery,
} from "../notify/delivery.ts";
import {
  type DeliveryFilter,
  type JobFilter,
  type JobPage,
  type JobStore,
  KeyTakenError,
  type Lease,
  LeaseLostError,
  type PageOptions,
  type ScheduleFiring,
  type StoreStats,
} from "./store.ts";

/** The primitive reads and writes a store offers inside one atomic transaction. */
export interface Tx {
  getJob(id: number): Job | null;
  insertJob(make: (id: number) => Job): Job;
  putJob(job: Job): void;
  removeJob(id: number): void;
  /** The oldest-due claimable job (optionally a given id), or null. */
  findClaimable(now: number, id?: number): Job | null;
  findAbandoned(now: number): Job[];
  queryJobs(filter: JobFilter, page: PageOptions): Job[];
  countJobs(filter: JobFilter): number;
  countByKindStatus(): Array<{ kind: string; status: JobStatus; n: number }>;
  getSchedule(id: number): Schedule | null;
  insertSchedule(make: (id: number) => Schedule): Schedule;
  putSchedule(s: Schedule): void;
  removeSchedule(id: number): void;
  allSchedules(): Schedule[];
  dueSchedules(now: number): Schedule[];
  nullScheduleRefs(scheduleId: number): void;
  getDelivery(id: number): Delivery | null;
  findDelivery(channel: string, dedupeKey: string): Delivery | null;
  insertDelivery(make: (id: number) => Delivery): Delivery;
  putDelivery(d: Delivery): void;
  /** Pending deliveries due at `now`, by next_attempt_at then id. */
  dueDeliveries(now: number, limit: number): Delivery[];
  /** Newest first. */
  queryDeliveries(filter: DeliveryFilter, limit: number): Delivery[];
  countDeliveries(): Array<
    { channel: string; status: DeliveryStatus; retried: boolean; n: number }
  >;
  /** Removes delivered and dead deliveries updated before `before`; returns how many. */
  removeDeliveriesBefore(before: number): number;
}

export interface BaseOptions {
  /** Injected clock, so lease expiry and backoff are testable without waiting. */
  now?: () => number;
}

export function encodeCursor(id: number): string {
  return btoa(`j:${id}`);
}

export function decodeCursor(cursor: string | null | undefined): number | null {
  if (!cursor) return null;
  try {
    const m = /^j:(\d+)$/.exec(atob(cursor));
    if (m) return Number(m[1]);
  } catch { /* fall through */ }
  throw new CairnError(
    "VALIDATION_FAILED",
    "Invalid cursor: pass next_cursor from a previous page",
    {
      details: [{ path: "cursor", message: "not a cursor returned by this API" }],
    },
  );
}

/**
 * Everything a store does, written once over the Tx primitives and the pure
 * state machine. A subclass supplies only the transaction and storage.
 */
export abstract class BaseStore implements JobStore {
  abstract readonly kind: "sqlite" | "jsonl";
  protected readonly now: () => number;

  constructor(options: BaseOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  protected abstract transaction<T>(fn: (tx: Tx) => T): T;
  abstract close(): Promise<void>;

  #owned(tx: Tx, id: number, token: string): Job {
    const job = tx.getJob(id);
    if (!job || job.status !== "running" || job.lease_token !== token) throw new LeaseLostError(id);
    return job;
  }

  #mustGet(tx: Tx, id: number): Job {
    const job = tx.getJob(id);
    if (!job) throw new CairnError("JOB_NOT_FOUND", `Job ${id} not found`);
    return job;
  }

  enqueue(input: NewJob, options: { claimAs?: Lease } = {}): Promise<Job> {
    return this.#run((tx) => {
      const now = this.now();
      let job = tx.insertJob((id) => state.newJob(id, input, now));
      if (options.claimAs) {
        job = state.claim(
          job,
          now,
          options.claimAs.owner,
          crypto.randomUUID(),
          options.claimAs.leaseMs,
        );
        tx.putJob(job);
      }
      return job;
    });
  }

  get(id: number): Promise<Job | null> {
    return this.#run((tx) => tx.getJob(id));
  }

  list(filter: JobFilter, page: PageOptions): Promise<JobPage> {
    return this.#run((tx) => {
      const limit = Math.max(1, Math.min(page.limit, 1000));
      const rows = tx.queryJobs(filter, { ...page, limit: limit + 1 });
      const jobs = rows.slice(0, limit);
      const more = rows.length > limit;
      return { jobs, next_cursor: more ? encodeCursor(jobs[jobs.length - 1].id) : null };
    });
  }

  count(filter: JobFilter): Promise<number> {
    return this.#run((tx) => tx.countJobs(filter));
  }

  stats(): Promise<StoreStats> {
    return this.#run((tx) => {
      const zero = () =>
        Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
      const stats: StoreStats = { by_status: zero(), by_kind: {}, total: 0 };
      for (const { kind, status, n } of tx.countByKindStatus()) {
        stats.by_status[status] += n;
        (stats.by_kind[kind] ??= zero())[status] += n;
        stats.total += n;
      }
      return stats;
    });
  }

  claim(lease: Lease, options: { id?: number } = {}): Promise<Job | null> {
    return this.#run((tx) => {
      const now = this.now();
      for (const job of tx.findAbandoned(now)) {
        const settled = state.settleAbandoned(job, now);
        if (settled) tx.putJob(settled);
      }
      const job = tx.findClaimable(now, options.id);
      if (!job) return null;
      const claimed = state.claim(job, now, lease.owner, crypto.randomUUID(), lease.leaseMs);
      tx.putJob(claimed);
      return claimed;
    });
  }

  claimBatch(lease: Lease, limit: number, options: { id?: number } = {}): Promise<Job[]> {
    return this.#run((tx) => {
      const out: Job[] = [];
      const now = this.now();
      for (const job of tx.findAbandoned(now)) {
        const settled = state.settleAbandoned(job, now);
        if (settled) tx.putJob(settled);
      }
      while (out.length < limit) {
        const job = tx.findClaimable(now, options.id);
        if (!job) break;
        const claimed = state.claim(job, now, lease.owner, crypto.randomUUID(), lease.leaseMs);
        tx.putJob(claimed);
        out.push(claimed);
      }
      return out;
    });
  }

  renew(
    id: number,
    token: string,
    leaseMs: number,
    patch: { progress?: Progress } = {},
  ): Promise<Job> {
    return this.#run((tx) => {
      const job = { ...state.renew(this.#owned(tx, id, token), this.now(), leaseMs), ...patch };
      tx.putJob(job);
      return job;
    });
  }

  update(id: number, token: string, patch: { progress?: Progress; key?: string }): Promise<Job> {
    return this.#run((tx) => {
      const owned = this.#owned(tx, id, token);
      if (patch.key !== undefined && owned.kind === "backup") {
        const holder = tx.queryJobs({ key: patch.key, kind: "backup" }, { limit: 2 })
          .find((j) => j.id !== id);
        if (holder) throw new KeyTakenError(patch.key, holder.id);
      }
      const job = { ...owned, ...patch, updated_at: this.now() };
      tx.putJob(job);
      return job;
    });
  }

  complete(id: number, token: string, result: Record<string, unknown>): Promise<Job> {
    return this.#transition(id, token, (job, now) => state.complete(job, now, result));
  }

  fail(
    id: number,
    token: string,
    error: string,
    options: { retryDelayMs: number; permanent?: boolean; result?: Record<string, unknown> },
  ): Promise<Job> {
    return this.#transition(id, token, (job, now) => state.fail(job, now, error, options));
  }

  markCancelled(id: number, token: string): Promise<Job> {
    return this.#transition(id, token, (job, now) => state.markCancelled(job, now));
  }

  release(id: number, token: string): Promise<Job> {
    return this.#transition(id, token, (job, now) => state.release(job, now));
  }

  expireLeasesOf(isDead: (owner: string) => boolean): Promise<Job[]> {
    return this.#run((tx) => {
      const now = this.now();
      const out: Job[] = [];
      const running = tx.queryJobs({ status: "running" }, { limit: Number.MAX_SAFE_INTEGER });
      for (const job of running) {
        if (job.lease_owner === null || !isDead(job.lease_owner)) continue;
        if (job.lease_expires_at !== null && job.lease_expires_at <= now) continue;
        const expired = state.expireLease(job, now);
        tx.putJob(expired);
        out.push(expired);
      }
      return out;
    });
  }

  settleAbandoned(
    id: number,
    token: string,
    outcome: { result: Record<string, unknown> } | { error: string },
  ): Promise<Job> {
    return this.#run((tx) => {
      const now = this.now();
      const job = tx.getJob(id);
      if (
        !job || job.lease_token !== token || !state.isLeaseExpired(job, now)
      ) throw new LeaseLostError(id);
      const settled = state.settleFromRepository(job, now, outcome);
      tx.putJob(settled);
      return settled;
    });
  }

  requestCancel(id: number): Promise<Job> {
    return this.#run((tx) => {
      const job = state.requestCancel(this.#mustGet(tx, id), this.now());
      tx.putJob(job);
      return job;
    });
  }

  requeue(id: number): Promise<Job> {
    return this.#run((tx) => {
      const job = state.requeue(this.#mustGet(tx, id), this.now());
      tx.putJob(job);
      return job;
    });
  }

  requeueMany(filter: Omit<JobFilter, "status">): Promise<number> {
    return this.#run((tx) => {
      const now = this.now();
      const failed = tx.queryJobs({ ...filter, status: "failed" }, {
        limit: Number.MAX_SAFE_INTEGER,
      });
      for (const job of failed) tx.putJob(state.requeue(job, now));
      return failed.length;
    });
  }

  deleteJob(id: number, options: { onlyStatus?: JobStatus } = {}): Promise<boolean> {
    return this.#run((tx) => {
      const job = tx.getJob(id);
      if (!job || (options.onlyStatus && job.status !== options.onlyStatus)) return false;
      tx.removeJob(id);
      return true;
    });
  }

  deleteJobs(filter: JobFilter): Promise<number> {
    return this.#run((tx) => {
      const jobs = tx.queryJobs(filter, { limit: Number.MAX_SAFE_INTEGER });
      for (const job of jobs) tx.removeJob(job.id);
      return jobs.length;
    });
  }

  createSchedule(input: NewSchedule): Promise<Schedule> {
    return this.#run((tx) => {
      const now = this.now();
      return tx.insertSchedule((id) => ({
        ...input,
        kind: input.kind ?? "backup",
        config_owned: input.config_owned ?? false,
        auto_prune: input.auto_prune ?? true,
        id,
        last_run_at: null,
        last_job_id: null,
        created_at: now,
        updated_at: now,
      }));
    });
  }

  getSchedule(id: number): Promise<Schedule | null> {
    return this.#run((tx) => tx.getSchedule(id));
  }

  listSchedules(): Promise<Schedule[]> {
    return this.#run((tx) => tx.allSchedules());
  }

  updateSchedule(id: number, patch: SchedulePatch): Promise<Schedule> {
    return this.#run((tx) => {
      const current = tx.getSchedule(id);
      if (!current) throw new CairnError("SCHEDULE_NOT_FOUND", `Schedule ${id} not found`);
      const next = { ...current, ...patch, id, updated_at: this.now() };
      tx.putSchedule(next);
      return next;
    });
  }

  deleteSchedule(id: number): Promise<boolean> {
    return this.#run((tx) => {
      if (!tx.getSchedule(id)) return false;
      tx.nullScheduleRefs(id);
      tx.removeSchedule(id);
      return true;
    });
  }

  fireDueSchedules(fire: (s: Schedule) => ScheduleFiring): Promise<Job[]> {
    return this.#run((tx) => {
      const now = this.now();
      const jobs: Job[] = [];
      for (const schedule of tx.dueSchedules(now)) {
        const firing = fire(schedule);
        const job = tx.insertJob((id) =>
          state.newJob(id, { ...firing.job, schedule_id: schedule.id }, now)
        );
        tx.putSchedule({
          ...schedule,
          next_run_at: firing.next_run_at,
          last_run_at: now,
          last_job_id: job.id,
          updated_at: now,
        });
        jobs.push(job);
      }
      return jobs;
    });
  }

  enqueueDelivery(input: NewDelivery): Promise<{ delivery: Delivery; created: boolean }> {
    return this.#run((tx) => {
      const existing = tx.findDelivery(input.channel, input.dedupe_key);
      if (existing) return { delivery: existing, created: false };
      const now = this.now();
      return { delivery: tx.insertDelivery((id) => newDelivery(id, input, now)), created: true };
    });
  }

  claimDeliveries(limit: number, leaseMs: number): Promise<Delivery[]> {
    return this.#run((tx) => {
      const now = this.now();
      return tx.dueDeliveries(now, Math.max(1, limit)).map((d) => {
        const claimed = claimDelivery(d, now, leaseMs);
        tx.putDelivery(claimed);
        return claimed;
      });
    });
  }

  settleDelivery(
    id: number,
    outcome: { ok: true } | { ok: false; error: string; retryDelayMs: number },
  ): Promise<Delivery | null> {
    return this.#run((tx) => {
      const d = tx.getDelivery(id);
      if (!d) return null;
      const next = settleDelivery(d, this.now(), outcome);
      if (next !== d) tx.putDelivery(next);
      return next;
    });
  }

  listDeliveries(filter: DeliveryFilter, limit: number): Promise<Delivery[]> {
    return this.#run((tx) => tx.queryDeliveries(filter, Math.max(1, Math.min(limit, 1000))));
  }

  deliveryCounts(): Promise<
    Record<string, Record<DeliveryStatus, number> & { failing: number }>
  > {
    return this.#run((tx) => {
      const out: Record<string, Record<DeliveryStatus, number> & { failing: number }> = {};
      for (const { channel, status, retried, n } of tx.countDeliveries()) {
        const c = out[channel] ??= {
          ...Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, 0])) as Record<
            DeliveryStatus,
            number
          >,
          failing: 0,
        };
        c[status] += n;
        if (status === "pending" && retried) c.failing += n;
      }
      return out;
    });
  }

  deleteDeliveriesBefore(before: number): Promise<number> {
    return this.#run((tx) => tx.removeDeliveriesBefore(before));
  }

  importRecords(
    records: { jobs: Job[]; schedules: Schedule[]; deliveries?: Delivery[] },
  ): Promise<void> {
    return this.#run((tx) => {
      // Schedules first: a job's schedule_id refers to one.
      for (const s of records.schedules) tx.putSchedule(s);
      for (const job of records.jobs) tx.putJob(job);
      for (const d of records.deliveries ?? []) tx.putDelivery(d);
    });
  }

  #transition(id: number, token: string, fn: (job: Job, now: number) => Job): Promise<Job> {
    return this.#run((tx) => {
      const job = fn(this.#owned(tx, id, token), this.now());
      tx.putJob(job);
      return job;
    });
  }

  #run<T>(fn: (tx: Tx) => T): Promise<T> {
    try {
      return Promise.resolve(this.transaction(fn));
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** In-memory filtering shared by the JSONL store and tests. */
export function matchesFilter(job: Job, filter: JobFilter): boolean {
  return (filter.status === undefined || job.status === filter.status) &&
    (filter.client_name === undefined || job.client_name === filter.client_name) &&
    (filter.kind === undefined || job.kind === filter.kind) &&
    (filter.schedule_id === undefined || job.schedule_id === filter.schedule_id) &&
    (filter.key === undefined || job.key === filter.key) &&
    (filter.finished_before === undefined ||
      (job.finished_at !== null && job.finished_at < filter.finished_before));
}

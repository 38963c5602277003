import type {
  Job,
  JobKind,
  JobStatus,
  NewJob,
  NewSchedule,
  Progress,
  Schedule,
  SchedulePatch,
} from "../jobs/types.ts";
import type { Delivery, DeliveryStatus, NewDelivery } from "../notify/delivery.ts";

export interface JobFilter {
  status?: JobStatus;
  client_name?: string;
  kind?: JobKind;
  schedule_id?: number;
  /** Jobs naming this backup key. */
  key?: string;
  /** Only jobs that finished before this instant (ms). */
  finished_before?: number;
}

export interface JobPage {
  jobs: Job[];
  next_cursor: string | null;
}

export interface PageOptions {
  limit: number;
  /** Opaque cursor from a previous page (newest first). */
  cursor?: string | null;
  offset?: number;
}

export interface Lease {
  owner: string;
  leaseMs: number;
}

export interface ClaimOptions {
  /** Only this job. */
  id?: number;
  /**
   * Only jobs of these clients (or of no client): the clients this node can run. A
   * shared store (postgres) honours it; a single-node store runs every client.
   */
  clients?: readonly string[];
}

/** A daemon sharing a store with others, as it registers itself. */
export interface NodeRegistration {
  /** config `node.name`, default the hostname. */
  name: string;
  /** Its lease owner (io/process_id.ts formatOwner). */
  owner: string;
  /** The clients it can run. */
  clients: string[];
}

/** A node as status shows it. Times are epoch ms. */
export interface NodeInfo extends NodeRegistration {
  started_at: number;
  heartbeat_at: number;
  stopped_at: number | null;
  running_job_ids: number[];
}

export interface StoreStats {
  by_status: Record<JobStatus, number>;
  by_kind: Record<string, Record<JobStatus, number>>;
  total: number;
}

/** A new occurrence of a due schedule: the job to enqueue and where the schedule moves on. */
export interface ScheduleFiring {
  job: NewJob;
  next_run_at: number | null;
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  channel?: string;
  /** Only ids below this: the next page of a newest-first listing (`cairn store copy`). */
  before_id?: number;
}

/**
 * Where jobs, schedules and the notification outbox live. Every method that changes state is durable before
 * its promise resolves; lease-holding calls fail with LeaseLostError when the
 * caller no longer owns the job.
 */
export interface JobStore {
  readonly kind: "sqlite" | "jsonl" | "postgres";
  enqueue(input: NewJob, options?: { claimAs?: Lease }): Promise<Job>;
  get(id: number): Promise<Job | null>;
  list(filter: JobFilter, page: PageOptions): Promise<JobPage>;
  count(filter: JobFilter): Promise<number>;
  stats(): Promise<StoreStats>;
  claim(lease: Lease, options?: ClaimOptions): Promise<Job | null>;
  /** Up to `limit` claims at once (a worker pool filling its free slots), oldest due first. */
  claimBatch(lease: Lease, limit: number, options?: ClaimOptions): Promise<Job[]>;
  /** Extends the lease (and saves progress, when given): the worker's heartbeat. */
  renew(id: number, token: string, leaseMs: number, patch?: { progress?: Progress }): Promise<Job>;
  /**
   * Saves progress or fixes the job's key. A backup job's key is unique among backup
   * jobs: KeyTakenError when another one holds it.
   */
  update(id: number, token: string, patch: { progress?: Progress; key?: string }): Promise<Job>;
  complete(id: number, token: string, result: Record<string, unknown>): Promise<Job>;
  fail(
    id: number,
    token: string,
    error: string,
    options: { retryDelayMs: number; permanent?: boolean; result?: Record<string, unknown> },
  ): Promise<Job>;
  markCancelled(id: number, token: string): Promise<Job>;
  /**
   * Ends the lease of every running job whose owner `isDead` says is gone, so it can
   * be claimed (or settled) at once instead of after its TTL. Returns those jobs.
   */
  expireLeasesOf(isDead: (owner: string) => boolean): Promise<Job[]>;
  /**
   * Settles an abandoned job (running, lease expired, still held under `token`)
   * from what the repository holds; LeaseLostError when it is no longer that.
   */
  settleAbandoned(
    id: number,
    token: string,
    outcome: { result: Record<string, unknown> } | { error: string },
  ): Promise<Job>;
  release(id: number, token: string): Promise<Job>;
  requestCancel(id: number): Promise<Job>;
  requeue(id: number): Promise<Job>;
  requeueMany(filter: Omit<JobFilter, "status">): Promise<number>;
  deleteJob(id: number, options?: { onlyStatus?: JobStatus }): Promise<boolean>;
  deleteJobs(filter: JobFilter): Promise<number>;

  createSchedule(input: NewSchedule): Promise<Schedule>;
  getSchedule(id: number): Promise<Schedule | null>;
  listSchedules(): Promise<Schedule[]>;
  updateSchedule(id: number, patch: SchedulePatch): Promise<Schedule>;
  deleteSchedule(id: number): Promise<boolean>;
  /**
   * Atomically takes every enabled schedule due at `now`, enqueues one job for each
   * (as `fire` describes) and moves it on, so two daemons never fire one occurrence twice.
   */
  fireDueSchedules(fire: (s: Schedule) => ScheduleFiring): Promise<Job[]>;

  // The notification outbox (src/notify/delivery.ts has the record and its state machine).

  /**
   * Adds a pending delivery (attempts 0, next_attempt_at = now), unless one with the same
   * (channel, dedupe_key) exists in any status: then that one is returned with
   * created false and nothing changes. The pair is unique for the life of the record.
   */
  enqueueDelivery(input: NewDelivery): Promise<{ delivery: Delivery; created: boolean }>;
  /**
   * Atomically takes up to `limit` pending deliveries with next_attempt_at <= now, oldest
   * next_attempt_at first (then id), and pushes each one's next_attempt_at to now + leaseMs
   * so no other sender takes it meanwhile (see claimDelivery). attempts is unchanged.
   */
  claimDeliveries(limit: number, leaseMs: number): Promise<Delivery[]>;
  /**
   * Records one send attempt of a delivery (see settleDelivery): delivered, retried at
   * now + retryDelayMs, or dead once attempts reach max_attempts. A delivery no longer
   * pending is returned unchanged; an unknown id is null.
   */
  settleDelivery(
    id: number,
    outcome: { ok: true } | { ok: false; error: string; retryDelayMs: number },
  ): Promise<Delivery | null>;
  /** Deliveries matching `filter`, newest (highest id) first, at most `limit`. */
  listDeliveries(filter: DeliveryFilter, limit: number): Promise<Delivery[]>;
  /**
   * Counts by channel and status, plus `failing`: pending deliveries with attempts > 0
   * (sent at least once and not yet through). Channels with no delivery are absent.
   */
  deliveryCounts(): Promise<
    Record<string, Record<DeliveryStatus, number> & { failing: number }>
  >;
  /** Deletes delivered and dead deliveries last updated before `before` (ms); returns how many. */
  deleteDeliveriesBefore(before: number): Promise<number>;
  /**
   * Adds jobs, schedules and outbox deliveries exactly as given, ids included, in one
   * transaction (`cairn store copy`); later ids continue after the largest. Deliveries
   * go with them so their dedupe keys keep the new store's notifier from sending again
   * what was sent. The caller checks the store is empty first.
   */
  importRecords(
    records: { jobs: Job[]; schedules: Schedule[]; deliveries?: Delivery[] },
  ): Promise<void>;

  close(): Promise<void>;
}

export class LeaseLostError extends Error {
  constructor(id: number) {
    super(`Lost the lease on job ${id}: another worker owns it now or it was finalized`);
    this.name = "LeaseLostError";
  }
}

/** update({ key }) when another backup job already holds that key: pick another. */
export class KeyTakenError extends Error {
  constructor(key: string, holder: number) {
    super(`Backup key ${key} is already held by job ${holder}`);
    this.name = "KeyTakenError";
  }
}

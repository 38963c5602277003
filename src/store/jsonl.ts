import { dirname } from "node:path";
import { CairnError } from "../errors.ts";
import type { Job, JobStatus, Schedule } from "../jobs/types.ts";
import { syncDirSync } from "../io/fs_sync.ts";
import { logger } from "../log.ts";
import { type BaseOptions, BaseStore, decodeCursor, matchesFilter, type Tx } from "./base.ts";
import type { PageOptions } from "./store.ts";
import type { Delivery, DeliveryStatus } from "../notify/delivery.ts";

/** One line of the log: the whole entity after a change, or its removal. */
type Entry =
  | {
    t: "meta";
    format: 1;
    next_job_id: number;
    next_schedule_id: number;
    next_delivery_id?: number;
  }
  | { t: "job"; v: Job }
  | { t: "job-"; id: number }
  | { t: "sched"; v: Schedule }
  | { t: "sched-"; id: number }
  | { t: "dlv"; v: Delivery }
  | { t: "dlv-"; id: number }
  // A transaction of several changes is one line, so a kill mid-write loses all of it
  // (a torn last line is dropped) and never applies part of it (a store copy's import).
  | { t: "tx"; e: Entry[] };

const encoder = new TextEncoder();

/**
 * Append-only JSON-lines store for hosts that want a plain text file. Every change
 * is appended and fsynced before it is acknowledged; the log is compacted by writing
 * a temporary file and renaming it over the old one. One process at a time: a lock
 * on `<path>.lock` is taken on open and held until close.
 */
export class JsonlStore extends BaseStore {
  readonly kind = "jsonl" as const;
  readonly #path: string;
  readonly #jobs = new Map<number, Job>();
  readonly #schedules = new Map<number, Schedule>();
  readonly #deliveries = new Map<number, Delivery>();
  #nextJobId = 1;
  #nextScheduleId = 1;
  #nextDeliveryId = 1;
  #file: Deno.FsFile;
  #lock: Deno.FsFile;
  #lines = 0;
  #pending: Entry[] = [];
  #closed = false;

  private constructor(path: string, file: Deno.FsFile, lock: Deno.FsFile, options: BaseOptions) {
    super(options);
    this.#path = path;
    this.#file = file;
    this.#lock = lock;
  }

  static async open(path: string, options: BaseOptions = {}): Promise<JsonlStore> {
    await Deno.mkdir(dirname(path), { recursive: true });
    const lock = await acquireLock(path + ".lock", path);
    try {
      const file = await Deno.open(path, { create: true, read: true, append: true });
      const store = new JsonlStore(path, file, lock, options);
      await store.#load();
      return store;
    } catch (error) {
      lock.close();
      throw error;
    }
  }

  async #load(): Promise<void> {
    const bytes = await Deno.readFile(this.#path);
    const text = new TextDecoder().decode(bytes);
    let offset = 0;
    let lineNo = 0;
    let goodEnd = 0;
    while (offset < text.length) {
      const nl = text.indexOf("\n", offset);
      const line = nl === -1 ? text.slice(offset) : text.slice(offset, nl);
      const next = nl === -1 ? text.length : nl + 1;
      lineNo++;
      if (line.trim() !== "") {
        let entry: Entry | null = null;
        try {
          entry = nl === -1 ? null : JSON.parse(line) as Entry; // an unterminated line is torn by definition
        } catch { /* handled below */ }
        if (!entry) {
          if (next >= text.length) {
            logger.warn(
              "Dropped a torn last line from the job store (the process was killed mid-write)",
              {
                store: this.#path,
                line: lineNo,
              },
            );
            break;
          }
          throw new CairnError(
            "STORE_CORRUPT",
            `The job store ${this.#path} is corrupt at line ${lineNo}: not a JSON record. Restore it from a copy or move it aside.`,
          );
        }
        this.#apply(entry);
        this.#lines += entry.t === "tx" ? entry.e.length : 1;
      }
      offset = next;
      goodEnd = Math.min(next, text.length);
    }
    const goodBytes = encoder.encode(text.slice(0, goodEnd)).length;
    if (goodBytes < bytes.length) {
      // Cut the torn tail so that the next append starts on a clean line.
      await this.#file.truncate(goodBytes);
      await this.#file.syncData();
    }
  }

  #apply(entry: Entry): void {
    switch (entry.t) {
      case "meta":
        this.#nextJobId = Math.max(this.#nextJobId, entry.next_job_id);
        this.#nextScheduleId = Math.max(this.#nextScheduleId, entry.next_schedule_id);
        this.#nextDeliveryId = Math.max(this.#nextDeliveryId, entry.next_delivery_id ?? 1);
        break;
      case "job":
        this.#jobs.set(entry.v.id, entry.v);
        this.#nextJobId = Math.max(this.#nextJobId, entry.v.id + 1);
        break;
      case "job-":
        this.#jobs.delete(entry.id);
        break;
      case "sched":
        // Records written before schedule kinds existed are backup schedules.
        this.#schedules.set(entry.v.id, {
          ...{ kind: "backup", config_owned: false, auto_prune: true } as const,
          ...(entry.v as Partial<Schedule>),
        } as Schedule);
        this.#nextScheduleId = Math.max(this.#nextScheduleId, entry.v.id + 1);
        break;
      case "sched-":
        this.#schedules.delete(entry.id);
        break;
      case "dlv":
        this.#deliveries.set(entry.v.id, entry.v);
        this.#nextDeliveryId = Math.max(this.#nextDeliveryId, entry.v.id + 1);
        break;
      case "dlv-":
        this.#deliveries.delete(entry.id);
        break;
      case "tx":
        for (const e of entry.e) this.#apply(e);
        break;
    }
  }

  protected transaction<T>(fn: (tx: Tx) => T): T {
    if (this.#closed) throw new Error("The job store is closed");
    // Stage changes on copies so that a throwing fn leaves memory untouched.
    const staged = new Map<string, Entry>();
    const jobs = new Map<number, Job | null>();
    const schedules = new Map<number, Schedule | null>();
    let nextJobId = this.#nextJobId;
    let nextScheduleId = this.#nextScheduleId;
    let nextDeliveryId = this.#nextDeliveryId;
    const deliveries = new Map<number, Delivery | null>();
    const getDelivery = (id: number) =>
      deliveries.has(id) ? deliveries.get(id)! : this.#deliveries.get(id) ?? null;
    // Oldest first (ids only grow; a transaction's own inserts have the highest ids).
    const allDeliveries = () => {
      const out: Delivery[] = [];
      for (const [id, d] of this.#deliveries) if (!deliveries.has(id)) out.push(d);
      for (const d of deliveries.values()) if (d) out.push(d);
      return deliveries.size === 0 ? out : out.sort((a, b) => a.id - b.id);
    };
    const putDelivery = (d: Delivery) => {
      deliveries.set(d.id, d);
      staged.set(`d${d.id}`, { t: "dlv", v: d });
    };
    const getJob = (id: number) => jobs.has(id) ? jobs.get(id)! : this.#jobs.get(id) ?? null;
    const getSchedule = (id: number) =>
      schedules.has(id) ? schedules.get(id)! : this.#schedules.get(id) ?? null;
    // Newest first. Ids only grow and a job first appears when it is created, so the
    // map is already in id order; only a transaction's own writes need a sort.
    const allJobs = () => {
      if (jobs.size === 0) return [...this.#jobs.values()].reverse();
      const out: Job[] = [];
      for (const [id, job] of this.#jobs) if (!jobs.has(id)) out.push(job);
      for (const job of jobs.values()) if (job) out.push(job);
      return out.sort((a, b) => b.id - a.id);
    };
    const putJob = (job: Job) => {
      jobs.set(job.id, job);
      staged.set(`j${job.id}`, { t: "job", v: job });
    };
    const putSchedule = (s: Schedule) => {
      schedules.set(s.id, s);
      staged.set(`s${s.id}`, { t: "sched", v: s });
    };
    const tx: Tx = {
      getJob,
      insertJob: (make) => {
        const job = make(nextJobId++);
        putJob(job);
        return job;
      },
      putJob,
      removeJob: (id) => {
        jobs.set(id, null);
        staged.set(`j${id}`, { t: "job-", id });
      },
      findClaimable: (now, id) => {
        let best: Job | null = null;
        const consider = (job: Job | null) => {
          if (!job || (id !== undefined && job.id !== id)) return;
          const due = (job.status === "pending" && job.run_after <= now) ||
            (job.status === "running" && job.lease_expires_at !== null &&
              job.lease_expires_at <= now &&
              job.attempts < job.max_attempts && !job.cancel_requested);
          if (
            due &&
            (!best || job.run_after < best.run_after ||
              (job.run_after === best.run_after && job.id < best.id))
          ) {
            best = job;
          }
        };
        if (id !== undefined) consider(getJob(id));
        else for (const job of allJobs()) consider(job);
        return best;
      },
      findAbandoned: (now) =>
        allJobs().filter((j) =>
          j.status === "running" && j.lease_expires_at !== null && j.lease_expires_at <= now &&
          (j.attempts >= j.max_attempts || j.cancel_requested)
        ),
      queryJobs: (filter, page: PageOptions) => {
        const cursor = decodeCursor(page.cursor);
        const out: Job[] = [];
        let skip = page.offset ?? 0;
        for (const job of allJobs()) {
          if (cursor !== null && job.id >= cursor) continue;
          if (!matchesFilter(job, filter)) continue;
          if (skip > 0) {
            skip--;
            continue;
          }
          out.push(job);
          if (out.length >= page.limit) break;
        }
        return out;
      },
      countJobs: (filter) => allJobs().filter((j) => matchesFilter(j, filter)).length,
      countByKindStatus: () => {
        const counts = new Map<string, { kind: string; status: JobStatus; n: number }>();
        for (const j of allJobs()) {
          const k = `${j.kind}/${j.status}`;
          const c = counts.get(k) ?? { kind: j.kind, status: j.status, n: 0 };
          c.n++;
          counts.set(k, c);
        }
        return [...counts.values()];
      },
      getSchedule,
      insertSchedule: (make) => {
        const s = make(nextScheduleId++);
        putSchedule(s);
        return s;
      },
      putSchedule,
      removeSchedule: (id) => {
        schedules.set(id, null);
        staged.set(`s${id}`, { t: "sched-", id });
      },
      allSchedules: () => {
        const out = new Map(this.#schedules);
        for (const [id, s] of schedules) s ? out.set(id, s) : out.delete(id);
        return [...out.values()].sort((a, b) => a.id - b.id);
      },
      dueSchedules: (now) =>
        tx.allSchedules().filter((s) => s.enabled && s.next_run_at !== null && s.next_run_at <= now)
          .sort((a, b) => a.next_run_at! - b.next_run_at! || a.id - b.id),
      nullScheduleRefs: (scheduleId) => {
        for (const job of allJobs()) {
          if (job.schedule_id === scheduleId) putJob({ ...job, schedule_id: null });
        }
      },
      getDelivery,
      findDelivery: (channel, key) =>
        allDeliveries().find((d) => d.channel === channel && d.dedupe_key === key) ?? null,
      insertDelivery: (make) => {
        const d = make(nextDeliveryId++);
        putDelivery(d);
        return d;
      },
      putDelivery,
      dueDeliveries: (now, limit) =>
        allDeliveries().filter((d) => d.status === "pending" && d.next_attempt_at <= now)
          .sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.id - b.id).slice(0, limit),
      queryDeliveries: (filter, limit) =>
        allDeliveries().reverse().filter((d) =>
          (filter.status === undefined || d.status === filter.status) &&
          (filter.channel === undefined || d.channel === filter.channel) &&
          (filter.before_id === undefined || d.id < filter.before_id)
        ).slice(0, limit),
      countDeliveries: () => {
        const counts = new Map<
          string,
          { channel: string; status: DeliveryStatus; retried: boolean; n: number }
        >();
        for (const d of allDeliveries()) {
          const retried = d.attempts > 0;
          const k = JSON.stringify([d.channel, d.status, retried]);
          const c = counts.get(k) ?? { channel: d.channel, status: d.status, retried, n: 0 };
          c.n++;
          counts.set(k, c);
        }
        return [...counts.values()];
      },
      removeDeliveriesBefore: (before) => {
        let n = 0;
        for (const d of allDeliveries()) {
          if (d.status !== "pending" && d.updated_at < before) {
            deliveries.set(d.id, null);
            staged.set(`d${d.id}`, { t: "dlv-", id: d.id });
            n++;
          }
        }
        return n;
      },
    };
    const out = fn(tx);
    if (staged.size > 0) {
      this.#append([...staged.values()]);
      for (const entry of staged.values()) this.#apply(entry);
      this.#nextJobId = Math.max(this.#nextJobId, nextJobId);
      this.#nextScheduleId = Math.max(this.#nextScheduleId, nextScheduleId);
      this.#nextDeliveryId = Math.max(this.#nextDeliveryId, nextDeliveryId);
      this.#maybeCompact();
    }
    return out;
  }

  #append(entries: Entry[]): void {
    const line = entries.length === 1 ? entries[0] : { t: "tx", e: entries };
    const text = JSON.stringify(line) + "\n";
    const bytes = encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
    this.#file.syncDataSync();
    this.#lines += entries.length;
  }

  #maybeCompact(): void {
    const live = this.#jobs.size + this.#schedules.size + this.#deliveries.size + 1;
    if (this.#lines < Math.max(1000, live * 2)) return;
    this.compactSync();
  }

  /** Rewrites the log as one line per live entity: temp file, fsync, rename, fsync dir. */
  compactSync(): void {
    const tmp = `${this.#path}.compact-${Deno.pid}.tmp`;
    const lines: string[] = [
      JSON.stringify({
        t: "meta",
        format: 1,
        next_job_id: this.#nextJobId,
        next_schedule_id: this.#nextScheduleId,
        next_delivery_id: this.#nextDeliveryId,
      }),
    ];
    for (const s of this.#schedules.values()) lines.push(JSON.stringify({ t: "sched", v: s }));
    for (const d of this.#deliveries.values()) lines.push(JSON.stringify({ t: "dlv", v: d }));
    for (const j of this.#jobs.values()) lines.push(JSON.stringify({ t: "job", v: j }));
    const out = Deno.openSync(tmp, { create: true, write: true, truncate: true });
    try {
      const bytes = encoder.encode(lines.join("\n") + "\n");
      let written = 0;
      while (written < bytes.length) written += out.writeSync(bytes.subarray(written));
      out.syncSync();
    } finally {
      out.close();
    }
    Deno.renameSync(tmp, this.#path);
    syncDirSync(dirname(this.#path));
    this.#file.close();
    this.#file = Deno.openSync(this.#path, { read: true, append: true });
    this.#lines = lines.length;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#file.close();
      this.#lock.close();
    }
    return Promise.resolve();
  }
}

async function acquireLock(lockPath: string, storePath: string): Promise<Deno.FsFile> {
  const lock = await Deno.open(lockPath, { create: true, read: true, write: true });
  let locked = false;
  try {
    locked = await lock.tryLock(true);
  } catch {
    locked = false;
  }
  if (!locked) {
    let holder = "";
    try {
      holder = (await Deno.readTextFile(lockPath)).trim();
    } catch { /* unreadable: say nothing about the holder */ }
    lock.close();
    throw new CairnError(
      "STORE_LOCKED",
      `The JSONL job store ${storePath} is in use by another process${
        holder ? ` (pid ${holder})` : ""
      }: ` +
        "a JSONL store serves one process at a time; stop the other one or use store.kind: sqlite",
    );
  }
  await lock.truncate(0);
  await lock.write(encoder.encode(String(Deno.pid)));
  return lock;
}

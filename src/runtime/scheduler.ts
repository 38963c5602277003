import { toError } from "../errors.ts";
import { nextRunAt } from "../jobs/cron.ts";
import type { Job, Schedule } from "../jobs/types.ts";
import { logger } from "../log.ts";
import type { Services } from "./services.ts";

/**
 * The schedule worker: every poll it atomically takes the due schedules, enqueues one
 * job per schedule (a backup, or for a verify schedule a rehearsal of the client's
 * newest backup; carrying schedule_id) and moves next_run_at on.
 */
export class ScheduleWorker {
  readonly #services: Services;
  readonly #pollMs: number;
  readonly #onEnqueued: (jobs: Job[]) => void;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;
  #tick: Promise<unknown> = Promise.resolve();

  constructor(services: Services, options: { pollMs: number; onEnqueued: (jobs: Job[]) => void }) {
    this.#services = services;
    this.#pollMs = options.pollMs;
    this.#onEnqueued = options.onEnqueued;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Runs one pass now (also used after a schedule is created or changed). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#tick = this.fireDue().finally(() => {
        if (!this.#stopped) this.#schedule(this.#pollMs);
      });
    }, ms);
  }

  async fireDue(): Promise<Job[]> {
    try {
      const { config, store } = this.#services;
      // A verify schedule's job has no key yet: it rehearses the newest backup at run time.
      const jobs = await store.fireDueSchedules((s: Schedule) => ({
        job: {
          kind: s.kind === "verify" ? "verify" : "backup",
          client_name: s.client_name,
          label: s.label,
          max_attempts: config.backup.worker_max_attempts,
        },
        // Strictly after the occurrence being fired too: a node whose clock runs behind
        // the store's would otherwise compute that same occurrence and fire it twice.
        next_run_at:
          nextRunAt(s.cron, s.timezone, new Date(Math.max(Date.now(), s.next_run_at ?? 0)))
            ?.getTime() ?? null,
      }));
      for (const job of jobs) {
        logger.info("Schedule fired", {
          job_id: job.id,
          schedule_id: job.schedule_id,
          client: job.client_name,
        });
      }
      if (jobs.length) this.#onEnqueued(jobs);
      return jobs;
    } catch (error) {
      logger.error("Schedule worker failed to fire due schedules", {
        error: toError(error).message,
      });
      return [];
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#tick;
  }
}

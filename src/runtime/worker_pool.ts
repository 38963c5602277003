import { toError } from "../errors.ts";
import { type Job, TERMINAL } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { type AttemptOptions, JobStop, runAttempt } from "./attempt.ts";
import { nodeClients } from "./node.ts";
import { leaseMs, type Services } from "./services.ts";

export interface PoolOptions {
  concurrency: number;
  pollMs: number;
  heartbeatMs?: number;
  execute?: AttemptOptions["execute"];
  /** Called when this process starts an attempt of a job (must not throw). */
  onStarted?: (job: Job) => Promise<void> | void;
  /** Called after a job reaches its final state in this process. */
  onSettled?: (job: Job) => Promise<void> | void;
}

/**
 * The execution worker pool: claims due jobs up to `concurrency`, runs each as one
 * attempt with lease renewal, and hands jobs back on shutdown so a restart picks
 * them up at once.
 */
export class WorkerPool {
  readonly #services: Services;
  readonly #options: PoolOptions;
  readonly #running = new Map<number, { controller: AbortController; done: Promise<void> }>();
  #stopping = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;

  constructor(services: Services, options: PoolOptions) {
    this.#services = services;
    this.#options = options;
  }

  get active(): number {
    return this.#running.size;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** An in-process enqueue calls this so a worker starts now, not at the next poll. */
  wake(): void {
    this.#wake?.();
  }

  /** Stops a job this process runs at once, without waiting for the next heartbeat. */
  cancelLocal(id: number): boolean {
    const entry = this.#running.get(id);
    if (!entry) return false;
    if (!entry.controller.signal.aborted) entry.controller.abort(new JobStop("cancel"));
    return true;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      try {
        while (!this.#stopping && this.#running.size < this.#options.concurrency) {
          // Every free slot in one claim: one statement for all of them on a shared store.
          const free = this.#options.concurrency - this.#running.size;
          const jobs = await this.#services.store.claimBatch(
            {
              owner: this.#services.owner,
              leaseMs: leaseMs(this.#services.config),
            },
            free,
            { clients: nodeClients(this.#services.config) },
          );
          for (const job of jobs) this.#launch(job);
          if (jobs.length < free) break;
        }
      } catch (error) {
        logger.error("Worker could not claim jobs", { error: toError(error).message });
      }
      if (this.#stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#options.pollMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = null;
    }
  }

  #launch(job: Job): void {
    const controller = new AbortController();
    const done = (async () => {
      try {
        void this.#options.onStarted?.(job);
        const final = await runAttempt(this.#services, job, {
          controller,
          heartbeatMs: this.#options.heartbeatMs,
          execute: this.#options.execute,
        });
        if (TERMINAL.has(final.status)) await this.#options.onSettled?.(final);
      } catch (error) {
        logger.error("Worker crashed while finishing a job", {
          job_id: job.id,
          error: toError(error).message,
          stack: toError(error).stack,
        });
      } finally {
        this.#running.delete(job.id);
        this.wake();
      }
    })();
    this.#running.set(job.id, { controller, done });
  }

  /**
   * Stop claiming; give running jobs `graceMs` to finish; then abort them, which
   * releases their leases (the job goes back to pending without losing an attempt).
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.wake();
    await this.#loop;
    const all = () => Promise.all([...this.#running.values()].map((r) => r.done));
    if (this.#running.size > 0) {
      logger.info("Waiting for running jobs before shutdown", {
        running: this.#running.size,
        grace_ms: graceMs,
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        all().then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        for (const r of this.#running.values()) r.controller.abort(new JobStop("shutdown"));
        await all();
      }
    }
  }
}

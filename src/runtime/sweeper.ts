import { toError } from "../errors.ts";
import { logger } from "../log.ts";
import { sweep, type SweepReport } from "./recover.ts";
import type { Services } from "./services.ts";

/** One sweep, logged when it did something; never throws (a failed sweep is retried next time). */
export async function runSweep(services: Services, when: string): Promise<SweepReport | null> {
  try {
    const report = await sweep(services);
    if (
      report.reclaimed || report.settled || report.orphans.length || report.scratch.length ||
      report.partial_writes || report.restore_leftovers.length
    ) {
      logger.info("Sweep removed what crashes left", {
        when,
        reclaimed_jobs: report.reclaimed,
        settled_jobs: report.settled,
        orphan_artifacts: report.orphans.length,
        scratch_dirs: report.scratch.length,
        partial_writes: report.partial_writes,
        restore_leftovers: report.restore_leftovers,
      });
    }
    return report;
  } catch (error) {
    logger.error("The sweep failed", { when, error: toError(error).message });
    return null;
  }
}

/** Runs the sweep every `intervalMs` while the daemon runs (not only at start-up). */
export class Sweeper {
  readonly #services: Services;
  readonly #intervalMs: number;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<unknown> | null = null;
  #stopped = false;

  constructor(services: Services, intervalMs: number) {
    this.#services = services;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#running = runSweep(this.#services, "periodic").finally(() => {
        this.#running = null;
        this.#timer = null;
        this.start();
      });
    }, this.#intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}

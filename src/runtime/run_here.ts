import type { Progress } from "../jobs/types.ts";
import { type Job, type NewJob, TERMINAL } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { JobStop, runAttempt } from "./attempt.ts";
import { leaseMs, type Services } from "./services.ts";

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs one job to its end in this process, through the same store and attempt code
 * as the daemon: created already claimed (so a daemon cannot take it first), retried
 * with backoff here, and followed to its end if another worker picks up a retry.
 * Aborting `signal` (Ctrl-C) cancels the job.
 */
export async function runHere(
  services: Services,
  input: NewJob,
  options: {
    signal?: AbortSignal;
    onProgress?: (job: Job, p: Progress) => void;
    onRetry?: (job: Job) => void;
  } = {},
): Promise<Job> {
  const lease = { owner: services.owner, leaseMs: leaseMs(services.config) };
  let job = await services.store.enqueue(input, { claimAs: lease });
  for (;;) {
    const controller = new AbortController();
    const onAbort = () => controller.abort(new JobStop("cancel"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      job = await runAttempt(services, job, { controller, onProgress: options.onProgress });
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    if (TERMINAL.has(job.status)) return job;
    options.onRetry?.(job);
    await sleep(job.run_after - Date.now(), options.signal);
    if (options.signal?.aborted) {
      return await services.store.requestCancel(job.id).catch(async () =>
        (await services.store.get(job.id))!
      );
    }
    const claimed = await services.store.claim(lease, { id: job.id });
    if (claimed) {
      job = claimed;
      continue;
    }
    logger.info("Another worker took over the job; following it", { job_id: job.id });
    return await follow(services, job.id, options.signal);
  }
}

async function follow(services: Services, id: number, signal?: AbortSignal): Promise<Job> {
  for (;;) {
    const job = await services.store.get(id);
    if (!job || TERMINAL.has(job.status)) return job!;
    if (signal?.aborted) await services.store.requestCancel(id).catch(() => {});
    await sleep(500);
  }
}

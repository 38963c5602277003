import { loadConfig } from "../config/load.ts";
import { describeError } from "../errors.ts";
import type { Job, NewJob } from "../jobs/types.ts";
import { jobRecord } from "../jobs/types.ts";
import { configureLog } from "../log.ts";
import { runHere } from "../runtime/run_here.ts";
import { reclaimFromDeadOwners, settleAbandonedBackups } from "../runtime/recover.ts";
import { openServices, type Services } from "../runtime/services.ts";
import { describeStore } from "../store/copy.ts";
import { openInUse, storeUser } from "../store/use_lock.ts";
import { err, out, ProgressLine } from "./output.ts";

/**
 * Log lines as a person reads them. Job transitions are left out: the command
 * reports its own job (retries, result, failure) in plainer words.
 */
function humanLogSink(line: string): void {
  try {
    const { ts: _ts, level, msg, job_id, ...fields } = JSON.parse(line);
    if (job_id !== undefined) return;
    const extra = Object.entries(fields).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    ).join(" ");
    err(`cairn: ${level}: ${msg}${extra ? ` (${extra})` : ""}`);
  } catch {
    err(line);
  }
}

/**
 * backup, restore, verify and prune share this: open the same store the daemon uses,
 * run the job here, print the record (--json) or a summary. Exit 0 or 1.
 */
export async function runJobCommand(
  command: "backup" | "restore" | "verify" | "prune",
  flags: { config?: string; json?: boolean },
  makeJob: (services: Services) => Promise<NewJob> | NewJob,
  summarize: (job: Job) => string,
): Promise<number> {
  configureLog({ to: humanLogSink, level: Deno.env.get("CAIRN_LOG_LEVEL") as never ?? "warn" });
  const config = await loadConfig(flags.config);
  // Held (shared) until the job is done: a store copy refuses meanwhile, and this
  // refuses while one runs (store/use_lock.ts).
  const { value: services, lock } = await openInUse(
    config.store,
    describeStore(config.store),
    storeUser("cli", command),
    () => openServices(config),
    { store: (s) => s.store, close: (s) => s.store.close() },
  );
  try {
    await services.scratch.prepare();
  } catch (error) {
    await lock.release();
    await services.store.close();
    throw error;
  }
  // Only what dead processes left: a daemon sharing the scratch root keeps its files.
  // Jobs of dead processes on this host are ended too, so that a host without a
  // daemon does not keep them "running" (the orphan scan is the daemon's: it lists
  // the whole repository).
  await services.scratch.sweep();
  await reclaimFromDeadOwners(services).catch(() => []);
  await settleAbandonedBackups(services).catch(() => []);
  const progress = new ProgressLine();
  const interrupt = new AbortController();
  const onSignal = () => {
    err("\nInterrupted: cancelling the job…");
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const input = await makeJob(services);
    const job = await runHere(services, input, {
      signal: interrupt.signal,
      onProgress: (j, p) => progress.update(j, p),
      onRetry: (j) => {
        progress.clear();
        err(
          `Attempt ${j.attempts} of ${j.max_attempts} failed: ${j.error}; retrying in ${
            Math.max(0, Math.round((j.run_after - Date.now()) / 1000))
          }s`,
        );
      },
    });
    progress.clear();
    if (flags.json) out(JSON.stringify(jobRecord(job)));
    else if (job.status === "completed") out(summarize(job));
    if (job.status !== "completed") {
      err(`Job ${job.id} ${job.status}: ${describeError(job.error ?? "no error recorded")}`);
      return 1;
    }
    return 0;
  } finally {
    progress.clear();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await lock.release();
    await services.store.close();
  }
}

import type { Config } from "../config/schema.ts";
import { isLoopbackHost } from "../config/load.ts";
import { CairnError, toError } from "../errors.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { Notifier } from "../notify/notifier.ts";
import { reconcileSchedules } from "./config_schedules.ts";
import { Metrics } from "../metrics/metrics.ts";
import { describeStore } from "../store/copy.ts";
import { keepStoreUse, openInUse, storeUser } from "../store/use_lock.ts";
import { nodeName, NodePresence } from "./node.ts";
import { ScheduleWorker } from "./scheduler.ts";
import { checkWritable } from "../repository/preflight.ts";
import { openServices, type Services } from "./services.ts";
import { runSweep, Sweeper } from "./sweeper.ts";
import { WorkerPool } from "./worker_pool.ts";

export interface DaemonHandle {
  services: Services;
  notifier: Notifier;
  pool: WorkerPool;
  scheduler: ScheduleWorker;
  /** The address actually bound (the port is real even when the config said 0). */
  address: { hostname: string; port: number };
  /** Resolves once the daemon has shut down. */
  finished: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export function shutdownGraceMs(): number {
  const raw = Deno.env.get("CAIRN_SHUTDOWN_GRACE_MS");
  const ms = raw === undefined || raw.trim() === "" ? NaN : Number(raw);
  return Number.isFinite(ms) && ms >= 0 ? ms : 25_000;
}

function splitListen(listen: string): { hostname: string; port: number } {
  const i = listen.lastIndexOf(":");
  return {
    hostname: listen.slice(0, i).replace(/^\[|\]$/g, ""),
    port: Number(listen.slice(i + 1)),
  };
}

/** A successful scheduled backup is followed by a prune of that schedule's backups. */
export async function pruneAfter(services: Services, pool: WorkerPool, job: Job): Promise<void> {
  if (job.kind !== "backup" || job.status !== "completed" || job.schedule_id === null) return;
  const schedule = await services.store.getSchedule(job.schedule_id);
  if (schedule && !schedule.auto_prune) return; // switched off for this schedule
  const prune = await services.store.enqueue({
    kind: "prune",
    client_name: job.client_name,
    schedule_id: job.schedule_id,
    max_attempts: services.config.backup.worker_max_attempts,
    params: { dry_run: false },
  });
  logger.info("Prune queued after scheduled backup", {
    job_id: prune.id,
    after_job_id: job.id,
    schedule_id: job.schedule_id,
  });
  pool.wake();
}

/** Starts the HTTP admin API and the worker loops; SIGTERM or SIGINT stops them gracefully. */
/**
 * Builds the HTTP handler over the running daemon's parts. Injected by the caller
 * (src/cli/daemon.ts passes api/app.ts's createApp), so that runtime never imports
 * api: api depends on runtime, not the other way round.
 */
export type AppFactory = (deps: {
  services: Services;
  pool: WorkerPool | null;
  scheduler: ScheduleWorker | null;
  startedAt: number;
  notifier?: Notifier | null;
  metrics?: Metrics;
}) => { fetch: (request: Request) => Response | Promise<Response> };

export async function startDaemon(
  config: Config,
  createApp: AppFactory,
): Promise<DaemonHandle> {
  const { hostname, port } = splitListen(config.server.listen);
  if (!isLoopbackHost(hostname) && !config.server.admin_key) {
    // Config validation refuses this too; this guard keeps the promise if that ever changes.
    throw new Error(`Refusing to listen on ${config.server.listen} without server.admin_key`);
  }
  // Signals first: a SIGTERM during start-up must be a graceful stop, not a kill.
  let onSignal: (sig: string) => void = (sig) => (early ??= sig);
  let early: string | null = null;
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => onSignal(sig));
  }
  // A store copy must not read a store a daemon is changing (store/use_lock.ts).
  const { value: services, lock: useLock } = await openInUse(
    config.store,
    describeStore(config.store),
    storeUser("daemon", "daemon", nodeName(config)),
    () => openServices(config),
    { store: (s) => s.store, close: (s) => s.store.close() },
  );
  try {
    await services.scratch.prepare();
  } catch (error) {
    await useLock.release();
    await services.store.close();
    throw error;
  }
  const startedAt = Date.now();
  try {
    await checkWritable(services.repository);
  } catch (error) {
    logger.error("The repository is not writable; backups will fail until this is fixed", {
      error: toError(error).message,
    });
  }
  // The config's schedules: created, updated or removed to match, before the scheduler runs.
  await reconcileSchedules(services.store, config);
  // Before any worker claims: jobs of a killed predecessor on this host are taken
  // back now, and what it left (orphan artifacts, scratch files) is removed.
  await runSweep(services, "start-up");
  const sweeper = new Sweeper(services, config.backup.sweep_interval_ms);

  const notifier = new Notifier(services, { startedAt });
  const metrics = new Metrics();
  const pool: WorkerPool = new WorkerPool(services, {
    concurrency: config.backup.worker_concurrency,
    pollMs: config.backup.execution_worker_poll_ms,
    onStarted: (job) => notifier.jobStarted(job),
    onSettled: async (job) => {
      await metrics.observeJob(job).catch(() => {});
      await notifier.jobSettled(job);
      await pruneAfter(services, pool, job).catch((e) =>
        logger.error("Could not queue a prune", { error: toError(e).message })
      );
    },
  });
  const scheduler = new ScheduleWorker(services, {
    pollMs: config.backup.schedule_worker_poll_ms,
    onEnqueued: () => pool.wake(),
  });
  const storeLabel = describeStore(config.store);
  const node = new NodePresence(services, () => keepStoreUse(useLock, storeLabel));
  if (config.backup.worker_enabled) {
    pool.start();
    scheduler.start();
  }
  try {
    // After pool.start(): a NOTIFY from now on wakes a pool that is running.
    await node.start(() => pool.wake());
  } catch (error) {
    logger.warn("Could not register this node; polling only", { error: toError(error).message });
  }
  sweeper.start();
  notifier.start();
  if (!config.server.admin_key) {
    logger.warn(
      "No server.admin_key is set: the admin API on loopback accepts requests without a key",
    );
  }

  const app = createApp({ services, pool, scheduler, startedAt, notifier, metrics });
  const abort = new AbortController();
  let address = { hostname, port };
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: abort.signal,
      onListen: (addr) => (address = { hostname: addr.hostname, port: addr.port }),
    }, app.fetch);
  } catch (error) {
    await useLock.release();
    await services.store.close();
    // A taken or forbidden address is the operator's to fix (exit 2), not a crash.
    throw new CairnError(
      "LISTEN_FAILED",
      `Cannot listen on ${config.server.listen} (server.listen): ${
        toError(error).message
      }; stop the process that holds it or choose another address`,
    );
  }

  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  let stopping: Promise<void> | null = null;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      logger.info("Shutting down", { reason });
      await scheduler.stop();
      await sweeper.stop();
      await pool.stop(shutdownGraceMs());
      await notifier.stop();
      await node.stop();
      abort.abort();
      await server.finished.catch(() => {});
      await useLock.release();
      await services.store.close();
      logger.info("Stopped");
      resolveFinished();
    })();
    return stopping;
  };
  onSignal = (sig) => void shutdown(sig);
  if (early) void shutdown(early);
  logger.info("cairn daemon started", {
    version: VERSION,
    pid: Deno.pid,
    listen: `${address.hostname}:${address.port}`,
    store: config.store.kind,
    repository: services.repository.location,
    workers: config.backup.worker_enabled ? config.backup.worker_concurrency : 0,
    startup_ms: Math.round(performance.now()),
  });
  return { services, pool, scheduler, notifier, address, finished, shutdown };
}

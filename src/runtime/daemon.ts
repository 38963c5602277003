import type { Config } from "../config/schema.ts";
import { toError } from "../errors.ts";
import { logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { leaseMs, openServices, type Services } from "./services.ts";
import { WorkerPool } from "./worker_pool.ts";

export interface DaemonHandle {
  services: Services;
  pool: WorkerPool;
  /** Resolves once the daemon has shut down. */
  finished: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export function shutdownGraceMs(): number {
  const raw = Number(Deno.env.get("CAIRN_SHUTDOWN_GRACE_MS"));
  return Number.isFinite(raw) && raw >= 0 ? raw : 25_000;
}

/** Starts the worker loops; SIGTERM or SIGINT stops them gracefully. */
export async function startDaemon(config: Config): Promise<DaemonHandle> {
  const services = await openServices(config);
  try {
    await services.repository.checkWritable();
  } catch (error) {
    logger.error("The repository is not writable; backups will fail until this is fixed", { error: toError(error).message });
  }
  const cleaned = await services.repository.cleanupPartial(leaseMs(config) * 2).catch(() => 0);
  if (cleaned) logger.info("Removed leftovers of interrupted writes", { files: cleaned });

  const pool = new WorkerPool(services, {
    concurrency: config.backup.worker_concurrency,
    pollMs: config.backup.execution_worker_poll_ms,
  });
  if (config.backup.worker_enabled) pool.start();

  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  let stopping: Promise<void> | null = null;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      logger.info("Shutting down", { reason });
      await pool.stop(shutdownGraceMs());
      await services.store.close();
      logger.info("Stopped");
      resolveFinished();
    })();
    return stopping;
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => void shutdown(sig));
  }
  logger.info("cairn daemon started", {
    version: VERSION,
    pid: Deno.pid,
    store: config.store.kind,
    repository: services.repository.location,
    workers: config.backup.worker_enabled ? config.backup.worker_concurrency : 0,
  });
  return { services, pool, finished, shutdown };
}

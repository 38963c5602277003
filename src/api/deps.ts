import type { Context } from "hono";
import { logger } from "../log.ts";
import type { Job, NewJob } from "../jobs/types.ts";
import type { ScheduleWorker } from "../runtime/scheduler.ts";
import type { Services } from "../runtime/services.ts";
import type { WorkerPool } from "../runtime/worker_pool.ts";

/** What the routes need from the running daemon. */
export interface ApiDeps {
  services: Services;
  pool: WorkerPool | null;
  scheduler: ScheduleWorker | null;
  startedAt: number;
}

/** Enqueues and wakes a local worker, so an API job starts now rather than at the next poll. */
export async function enqueue(deps: ApiDeps, input: NewJob): Promise<Job> {
  const job = await deps.services.store.enqueue(input);
  logger.info("Job queued", {
    job_id: job.id,
    kind: job.kind,
    client: job.client_name,
    key: job.key,
  });
  deps.pool?.wake();
  return job;
}

/**
 * `x-athena-client` names the client when a body leaves client_name out. Either is
 * only a name: callers check it with requireClient (an own-key lookup).
 */
export function clientFrom(c: Context, fromBody: string | undefined): string | undefined {
  return fromBody ?? c.req.header("x-athena-client") ?? undefined;
}

export type AppEnv = { Variables: { requestId: string; deps: ApiDeps } };

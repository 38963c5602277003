import type { Context } from "hono";
import { logger } from "../log.ts";
import { invalid } from "./validate.ts";
import type { Job, NewJob } from "../jobs/types.ts";
import type { ScheduleWorker } from "../runtime/scheduler.ts";
import type { Services } from "../runtime/services.ts";
import type { WorkerPool } from "../runtime/worker_pool.ts";
import type { Notifier } from "../notify/notifier.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** What the routes need from the running daemon. */
export interface ApiDeps {
  services: Services;
  pool: WorkerPool | null;
  scheduler: ScheduleWorker | null;
  startedAt: number;
  /** The notification outbox's sender; absent where no daemon runs (tests, CLI). */
  notifier?: Notifier | null;
  /** Job duration histogram and scrape rendering; made on first scrape when absent. */
  metrics?: Metrics;
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

/** clientFrom, required: a body with neither client_name nor the header is a 400 naming the field. */
export function requiredClientName(c: Context, fromBody: string | undefined): string {
  const name = clientFrom(c, fromBody);
  if (name === undefined || name === "") {
    throw invalid([{
      path: "client_name",
      message: "required: name a configured client, or send the x-athena-client header",
    }]);
  }
  return name;
}

export type AppEnv = { Variables: { requestId: string; deps: ApiDeps } };

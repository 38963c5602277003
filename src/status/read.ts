import type { Config } from "../config/schema.ts";
import { maxAgeFor } from "../notify/overdue.ts";
import { nodeHeartbeatMs, nodeName } from "../runtime/node.ts";
import { PostgresStore } from "../store/postgres.ts";
import type { JobStore } from "../store/store.ts";
import { type ClusterStatus, clusterStatus } from "./cluster.ts";
import { clientHealth, type Health } from "./health.ts";

const iso = (ms: number | null | undefined) => (ms == null ? null : new Date(ms).toISOString());

/** One client's answer to "did it back up, was that verified, is it overdue, what next?". */
export interface ClientStatus {
  client: string;
  health: Health;
  last_success: { job_id: number; key: string | null; finished_at: string } | null;
  /** Whether a verify job of that very backup passed. */
  verified: boolean;
  verification: { job_id: number; status: "passed" | "failed"; finished_at: string } | null;
  last_failure: { job_id: number; finished_at: string; error: string | null } | null;
  overdue: boolean;
  /** null: not watched (no max_age and no enabled schedule). */
  max_age_ms: number | null;
  next_run_at: string | null;
}

/**
 * Reads every configured client's status from the store: a fixed handful of indexed
 * queries per client. `since` is when watching began (the daemon's start, for a client
 * that never backed up).
 */
export async function readClientStatuses(
  store: JobStore,
  config: Config,
  now: number,
  since: number,
): Promise<ClientStatus[]> {
  const schedules = await store.listSchedules();
  const out: ClientStatus[] = [];
  for (const [name, client] of Object.entries(config.clients)) {
    const [success] = (await store.list(
      { client_name: name, kind: "backup", status: "completed" },
      { limit: 1 },
    )).jobs;
    const [failure] = (await store.list(
      { client_name: name, kind: "backup", status: "failed" },
      { limit: 1 },
    )).jobs;
    let verification: ClientStatus["verification"] = null;
    if (success?.key) {
      const verifies = (await store.list({ key: success.key, kind: "verify" }, { limit: 20 })).jobs
        .filter((j) => (j.status === "completed" || j.status === "failed") && j.finished_at)
        .sort((a, b) => b.finished_at! - a.finished_at!);
      if (verifies[0]) {
        verification = {
          job_id: verifies[0].id,
          status: verifies[0].status === "completed" ? "passed" : "failed",
          finished_at: iso(verifies[0].finished_at)!,
        };
      }
    }
    const own = schedules.filter((s) => s.client_name === name);
    const maxAge = maxAgeFor(client.max_age, own, now);
    const startedWatching = Math.min(since, ...own.map((s) => s.created_at));
    const lastSuccessAt = success?.finished_at ?? null;
    const health = clientHealth({
      now,
      lastSuccessAt,
      lastFailureAt: failure?.finished_at ?? null,
      verification: verification?.status ?? null,
      maxAgeMs: maxAge,
      since: startedWatching,
    });
    const nextRuns = own.filter((s) => s.enabled && s.next_run_at !== null).map((s) =>
      s.next_run_at!
    );
    out.push({
      client: name,
      health,
      last_success: success
        ? { job_id: success.id, key: success.key, finished_at: iso(success.finished_at)! }
        : null,
      verified: verification?.status === "passed",
      verification,
      last_failure: failure
        ? { job_id: failure.id, finished_at: iso(failure.finished_at)!, error: failure.error }
        : null,
      overdue: maxAge !== null && now - (lastSuccessAt ?? startedWatching) > maxAge,
      max_age_ms: maxAge,
      next_run_at: nextRuns.length ? iso(Math.min(...nextRuns)) : null,
    });
  }
  return out;
}

/**
 * The nodes sharing a PostgreSQL store, as GET /admin/status and `cairn status` show
 * them: `node` is this config's node name, `nodes` each node's state from its
 * heartbeat (stale after three of this config's heartbeat intervals) and running jobs,
 * `unrunnable` the clients with pending jobs no live node declares. null for a store
 * of one host (sqlite, jsonl), where there are no nodes.
 */
export async function readClusterStatus(
  store: JobStore,
  config: Config,
): Promise<({ node: string } & ClusterStatus) | null> {
  if (!(store instanceof PostgresStore)) return null;
  const [nodes, pending] = await Promise.all([store.nodes(), store.pendingByClient()]);
  return {
    node: nodeName(config),
    ...clusterStatus(nodes, pending, store.now(), 3 * nodeHeartbeatMs(config)),
  };
}

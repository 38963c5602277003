import type { StoreStats } from "../store/store.ts";
import type { Services } from "../runtime/services.ts";
import type { DeliveryStatus } from "../notify/delivery.ts";
import type { Health } from "../status/health.ts";
import type { ClusterStatus } from "../status/cluster.ts";
import { readClientStatuses, readClusterStatus } from "../status/read.ts";

/** What one scrape reports, read from the job store (times in seconds since the epoch). */
export interface MetricsSnapshot {
  clients: Array<{
    client: string;
    last_success_ts: number | null;
    last_success_duration_s: number | null;
    last_success_size_bytes: number | null;
    last_verify_ts: number | null;
    /** 1 when the newest finished verify job completed, 0 when it failed, null: none yet. */
    last_verify_ok: 0 | 1 | null;
    /** As `cairn status` reports it. */
    health: Health;
  }>;
  jobs: StoreStats;
  schedules: Array<{ id: number; client: string; label: string; next_run_ts: number | null }>;
  deliveries: Record<string, Record<DeliveryStatus, number> & { failing: number }>;
  /** The nodes sharing a PostgreSQL store, as status shows them; null for sqlite/jsonl. */
  cluster: ClusterStatus | null;
}

const sec = (ms: number | null | undefined) => (ms == null ? null : ms / 1000);

/**
 * Reads the snapshot: three indexed queries per configured client plus one pass over
 * job counts, schedules and the outbox, whatever the number of jobs.
 */
export async function readSnapshot(
  services: Services,
  startedAt = Date.now(),
): Promise<MetricsSnapshot> {
  const { store, config } = services;
  const clients: MetricsSnapshot["clients"] = [];
  const health = new Map(
    (await readClientStatuses(store, config, Date.now(), startedAt)).map((c) => [
      c.client,
      c.health,
    ]),
  );
  for (const client of Object.keys(config.clients)) {
    const [backup] = (await store.list(
      { client_name: client, kind: "backup", status: "completed" },
      { limit: 1 },
    )).jobs;
    const [verifyOk] = (await store.list(
      { client_name: client, kind: "verify", status: "completed" },
      { limit: 1 },
    )).jobs;
    const [verifyBad] = (await store.list(
      { client_name: client, kind: "verify", status: "failed" },
      { limit: 1 },
    )).jobs;
    const newestVerify = [verifyOk, verifyBad].filter((j) => j?.finished_at != null)
      .sort((a, b) => b.finished_at! - a.finished_at!)[0];
    const size = backup?.result?.size_bytes;
    clients.push({
      client,
      last_success_ts: sec(backup?.finished_at),
      last_success_duration_s: backup?.started_at != null && backup.finished_at != null
        ? (backup.finished_at - backup.started_at) / 1000
        : null,
      last_success_size_bytes: typeof size === "number" ? size : null,
      last_verify_ts: sec(verifyOk?.finished_at),
      last_verify_ok: newestVerify ? (newestVerify.status === "completed" ? 1 : 0) : null,
      health: health.get(client) ?? "never",
    });
  }
  const schedules = (await store.listSchedules()).filter((s) => s.enabled).map((s) => ({
    id: s.id,
    client: s.client_name,
    label: s.label,
    next_run_ts: sec(s.next_run_at),
  }));
  return {
    clients,
    jobs: await store.stats(),
    schedules,
    deliveries: await store.deliveryCounts(),
    cluster: await readClusterStatus(store, config),
  };
}

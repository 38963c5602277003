import type { Job } from "../jobs/types.ts";
import type { Services } from "../runtime/services.ts";
import { readClientStatuses } from "../status/read.ts";
import type { Health } from "../status/health.ts";
import type { RunPoint } from "./chart.tsx";

/** One overview row: everything the page shows about one client. */
export interface OverviewRow {
  name: string;
  kind: string;
  health: Health;
  lastSuccess: { at: number; size: number | null; key: string | null } | null;
  lastVerify: { at: number | null; status: "passed" | "failed" } | null;
  nextRunAt: number | null;
  runs: RunPoint[];
}

function sizeOf(job: Job | null | undefined): number | null {
  const size = job?.result?.size_bytes;
  return typeof size === "number" ? size : null;
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : null);

/**
 * The overview: health, last success, its verification and the next run come from the
 * status (readClientStatuses, the answer of GET /admin/status and `cairn status`); the
 * chart from each client's last 30 backup jobs. `since` is the daemon's start.
 */
export async function overviewRows(
  services: Services,
  now: number,
  since: number,
): Promise<OverviewRow[]> {
  const { store, config } = services;
  const statuses = await readClientStatuses(store, config, now, since);
  return await Promise.all(statuses.map(async (st) => {
    const recent = await store.list({ client_name: st.client, kind: "backup" }, { limit: 30 });
    const success = st.last_success
      ? recent.jobs.find((j) => j.id === st.last_success!.job_id) ??
        await store.get(st.last_success.job_id)
      : null;
    return {
      name: st.client,
      kind: config.clients[st.client].kind,
      health: st.health,
      lastSuccess: st.last_success
        ? {
          at: Date.parse(st.last_success.finished_at),
          size: sizeOf(success),
          key: st.last_success.key,
        }
        : null,
      lastVerify: st.verification
        ? { at: ms(st.verification.finished_at), status: st.verification.status }
        : null,
      nextRunAt: ms(st.next_run_at),
      runs: recent.jobs.filter((j) => j.status === "completed").reverse().map((j) => ({
        size: sizeOf(j) ?? 0,
        durationMs: (j.finished_at ?? 0) - (j.started_at ?? j.finished_at ?? 0),
      })),
    };
  }));
}

import { redactClient } from "../config/redacted.ts";
import type { Job, Schedule } from "../jobs/types.ts";
import type { Services } from "../runtime/services.ts";
import type { RunPoint } from "./chart.tsx";
import { cronIntervalMs } from "./cron_preview.ts";
import { clientHealth, type Health } from "./health.ts";

/** One overview row: everything the page shows about one client. */
export interface OverviewRow {
  name: string;
  kind: string;
  health: Health;
  lastSuccess: { at: number; size: number | null; key: string | null } | null;
  lastVerify: { at: number | null; status: string; error: string | null } | null;
  nextRunAt: number | null;
  runs: RunPoint[];
}

function sizeOf(job: Job): number | null {
  const size = job.result?.size_bytes;
  return typeof size === "number" ? size : null;
}

/**
 * The overview, from the job store and the config: per client four indexed queries
 * (last 30 backups, last success, last verify) plus one schedule list for all.
 */
export async function overviewRows(services: Services, now: number): Promise<OverviewRow[]> {
  const { store, config } = services;
  const schedules = await store.listSchedules();
  const byClient = new Map<string, Schedule[]>();
  for (const s of schedules) {
    if (!s.enabled) continue;
    byClient.set(s.client_name, [...(byClient.get(s.client_name) ?? []), s]);
  }
  return await Promise.all(
    Object.keys(config.clients).map(async (name) => {
      const client = config.clients[name];
      const [recent, success, verify] = await Promise.all([
        store.list({ client_name: name, kind: "backup" }, { limit: 30 }),
        store.list({ client_name: name, kind: "backup", status: "completed" }, { limit: 1 }),
        store.list({ client_name: name, kind: "verify" }, { limit: 10 }),
      ]);
      const own = byClient.get(name) ?? [];
      const intervals = own.map((s) => cronIntervalMs(s.cron, s.timezone, new Date(now)))
        .filter((v): v is number => v !== null);
      const nextRuns = own.map((s) => s.next_run_at).filter((v): v is number => v !== null);
      const last = success.jobs[0];
      const finished = recent.jobs.filter((j) =>
        j.status === "completed" || j.status === "failed" || j.status === "cancelled"
      ) as (Job & { status: "completed" | "failed" | "cancelled" })[];
      const lastVerify = verify.jobs.find((j) => j.status === "completed" || j.status === "failed");
      return {
        name,
        kind: String(redactClient(client).kind),
        health: clientHealth({
          finished,
          lastSuccessAt: last?.finished_at ?? null,
          intervalMs: intervals.length ? Math.min(...intervals) : null,
          now,
        }),
        lastSuccess: last
          ? { at: last.finished_at ?? last.updated_at, size: sizeOf(last), key: last.key }
          : null,
        lastVerify: lastVerify
          ? { at: lastVerify.finished_at, status: lastVerify.status, error: lastVerify.error }
          : null,
        nextRunAt: nextRuns.length ? Math.min(...nextRuns) : null,
        runs: recent.jobs.filter((j) => j.status === "completed").reverse().map((j) => ({
          size: sizeOf(j) ?? 0,
          durationMs: (j.finished_at ?? 0) - (j.started_at ?? j.finished_at ?? 0),
        })),
      };
    }),
  );
}

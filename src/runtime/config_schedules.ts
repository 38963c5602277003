import type { Config } from "../config/schema.ts";
import { nextRunAt } from "../jobs/cron.ts";
import type { Schedule } from "../jobs/types.ts";
import { logger } from "../log.ts";
import type { JobStore } from "../store/store.ts";

export interface ReconcileResult {
  created: number[];
  updated: number[];
  removed: number[];
}

const identity = (s: { client_name: string; label: string; kind: string }) =>
  `${s.client_name}/${s.label}/${s.kind}`;

/**
 * Makes the store's config-owned schedules match the config's `schedules:`: each entry
 * is created, or updated in place when its (client, label, kind) exists (next_run_at
 * recomputed only when its timing changed), and config-owned schedules no longer in the
 * config are deleted (their jobs keep their history). Schedules created through the API
 * are never touched.
 */
export async function reconcileSchedules(
  store: JobStore,
  config: Pick<Config, "schedules">,
  now = new Date(),
): Promise<ReconcileResult> {
  const result: ReconcileResult = { created: [], updated: [], removed: [] };
  const owned = new Map(
    (await store.listSchedules()).filter((s) => s.config_owned).map((s) => [identity(s), s]),
  );
  for (const entry of config.schedules) {
    const want = {
      client_name: entry.client,
      cron: entry.cron,
      timezone: entry.timezone,
      label: entry.label,
      kind: entry.kind,
      enabled: entry.enabled,
      retention: entry.retention,
      auto_prune: entry.auto_prune,
      config_owned: true,
    };
    const next = () =>
      want.enabled ? nextRunAt(want.cron, want.timezone, now)?.getTime() ?? null : null;
    const current = owned.get(identity(want));
    owned.delete(identity(want));
    if (!current) {
      const s = await store.createSchedule({ ...want, next_run_at: next() });
      result.created.push(s.id);
      continue;
    }
    if (same(current, want)) continue;
    const timing = current.cron !== want.cron || current.timezone !== want.timezone ||
      current.enabled !== want.enabled;
    await store.updateSchedule(current.id, { ...want, ...(timing ? { next_run_at: next() } : {}) });
    result.updated.push(current.id);
  }
  for (const stale of owned.values()) {
    await store.deleteSchedule(stale.id);
    result.removed.push(stale.id);
  }
  if (result.created.length + result.updated.length + result.removed.length > 0) {
    logger.info("Schedules reconciled with the config", { ...result });
  }
  return result;
}

function same(
  s: Schedule,
  want: Omit<
    Schedule,
    "id" | "next_run_at" | "last_run_at" | "last_job_id" | "created_at" | "updated_at"
  >,
): boolean {
  return s.cron === want.cron && s.timezone === want.timezone && s.enabled === want.enabled &&
    s.auto_prune === want.auto_prune &&
    JSON.stringify(s.retention) === JSON.stringify(want.retention);
}

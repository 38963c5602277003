import type { Schedule } from "../jobs/types.ts";

/**
 * Whether a schedule comes from the YAML config (the operability work adds a `schedules:`
 * section and marks those schedules). Config-owned ones are shown read-only. Until that
 * field exists, every schedule is API-owned.
 */
export function isConfigOwned(schedule: Schedule): boolean {
  return (schedule as Schedule & { config_owned?: boolean }).config_owned === true;
}

import type { Schedule } from "../jobs/types.ts";

/**
 * Whether a schedule comes from the config file's `schedules:` section: shown read-only,
 * as the API refuses to change it.
 */
export function isConfigOwned(schedule: Schedule): boolean {
  return schedule.config_owned === true;
}

import { nextRunAt } from "../jobs/cron.ts";
import type { Schedule } from "../jobs/types.ts";

/**
 * The interval of a cron schedule near `now`: the gap between its next two
 * occurrences (ms), or null when it fires fewer than twice more.
 */
export function scheduleIntervalMs(
  s: Pick<Schedule, "cron" | "timezone">,
  now: number,
): number | null {
  const first = nextRunAt(s.cron, s.timezone, new Date(now));
  if (!first) return null;
  const second = nextRunAt(s.cron, s.timezone, first);
  return second ? second.getTime() - first.getTime() : null;
}

/**
 * How old a client's newest successful backup may be: its `max_age` when set, else
 * twice the interval of its most frequent enabled schedule, else null (not watched).
 */
export function maxAgeFor(
  clientMaxAgeMs: number | undefined,
  schedules: Array<Pick<Schedule, "cron" | "timezone" | "enabled">>,
  now: number,
): number | null {
  if (clientMaxAgeMs !== undefined) return clientMaxAgeMs;
  let shortest: number | null = null;
  for (const s of schedules) {
    if (!s.enabled) continue;
    const interval = scheduleIntervalMs(s, now);
    if (interval !== null && (shortest === null || interval < shortest)) shortest = interval;
  }
  return shortest === null ? null : 2 * shortest;
}

/**
 * Whether a client is overdue at `now`. Measured from its newest success, or, when it
 * never had one, from `since` (when watching began: the oldest of its schedules, or
 * the daemon's start), so a new client gets one full period before it is overdue.
 */
export function isOverdue(
  now: number,
  maxAgeMs: number | null,
  lastSuccessAt: number | null,
  since: number,
): boolean {
  if (maxAgeMs === null) return false;
  return now - (lastSuccessAt ?? since) > maxAgeMs;
}

/**
 * A client's health on the overview. This is the one place that decides it, so that the
 * status of the operability work (GET /admin/status) can replace it without touching pages.
 */
export type Health = "ok" | "overdue" | "failing" | "never";

export interface HealthInput {
  /** The client's backup jobs that ended (completed, failed; cancelled ones are ignored), newest first. */
  finished: { status: "completed" | "failed" | "cancelled"; finished_at: number | null }[];
  /** When its newest successful backup finished (epoch ms), or null. */
  lastSuccessAt: number | null;
  /** The shortest interval of its enabled schedules (ms), or null when none is scheduled. */
  intervalMs: number | null;
  now: number;
}

/**
 * failing: its newest ended backup failed for good; never: no backup ever succeeded;
 * overdue: the last success is older than twice the schedule's interval; else ok.
 * A client with no schedule is never overdue: nothing says when a backup is due.
 */
export function clientHealth(input: HealthInput): Health {
  const newest = input.finished.find((j) => j.status !== "cancelled");
  if (newest?.status === "failed") return "failing";
  if (input.lastSuccessAt === null) return "never";
  if (input.intervalMs !== null && input.now - input.lastSuccessAt > 2 * input.intervalMs) {
    return "overdue";
  }
  return "ok";
}

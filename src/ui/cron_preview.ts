import { Cron } from "croner";
import { cronProblem, timezoneProblem } from "../jobs/cron.ts";

export type CronPreview = { ok: true; runs: Date[] } | { ok: false; problem: string };

/** The next `count` run times strictly after `after`, in `timezone`, or why the input is refused. */
export function cronPreview(
  expression: string,
  timezone: string,
  after: Date,
  count = 5,
): CronPreview {
  const problem = cronProblem(expression) ??
    timezoneProblem(timezone);
  if (problem) return { ok: false, problem };
  const cron = new Cron(expression, { paused: true, timezone, mode: "5-or-6-parts" });
  return { ok: true, runs: cron.nextRuns(count, after) };
}

/** A run time as the schedule's zone sees it: "2026-12-01 02:00 (Europe/Berlin)". */
export function formatInZone(at: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: timezone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${
    get("minute")
  } (${timezone})`;
}

import { Cron } from "croner";

/** Why a time zone is refused, or null for a valid IANA name. */
export function timezoneProblem(timeZone: string): string | null {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone }).format(0);
    return null;
  } catch {
    return `unknown time zone ${
      JSON.stringify(timeZone)
    }: use an IANA name such as UTC or Europe/Berlin`;
  }
}

/** Why a cron expression is refused (5 fields, or 6 with seconds first), or null. */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `a cron expression has 5 fields (or 6 with seconds first), got ${fields}`;
  }
  try {
    new Cron(expression, { paused: true, mode: "5-or-6-parts" });
    return null;
  } catch (error) {
    return (error as Error).message.replace(/^CronPattern: /, "");
  }
}

/**
 * The first occurrence strictly after `after`, in the schedule's time zone; null if
 * the expression never fires again. Computed from "now", never from the missed
 * occurrence, so a daemon that was down runs a schedule once, not once per miss.
 */
export function nextRunAt(expression: string, timeZone: string, after: Date): Date | null {
  return new Cron(expression, { paused: true, timezone: timeZone, mode: "5-or-6-parts" }).nextRun(
    after,
  );
}

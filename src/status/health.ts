/** A client's health, the answer `cairn status` exits on. */
export type Health = "ok" | "overdue" | "failing" | "never";

export interface HealthInput {
  now: number;
  /** Newest successful backup's finish (ms), or null. */
  lastSuccessAt: number | null;
  /** Newest failed-for-good backup's finish (ms), or null. */
  lastFailureAt: number | null;
  /** The verification of the newest successful backup: null when none finished. */
  verification: "passed" | "failed" | null;
  /** From maxAgeFor(): null when the client is not watched for age. */
  maxAgeMs: number | null;
  /** When watching began (see isOverdue). */
  since: number;
}

/**
 * - failing: the newest final backup outcome is a failure, or the newest backup
 *   failed its verification (it may not restore);
 * - never: no successful backup at all (and none failed);
 * - overdue: the newest success is older than the client's max age;
 * - ok: otherwise.
 */
export function clientHealth(i: HealthInput): Health {
  if (i.lastFailureAt !== null && (i.lastSuccessAt === null || i.lastFailureAt > i.lastSuccessAt)) {
    return "failing";
  }
  if (i.lastSuccessAt === null) {
    return "never";
  }
  if (i.verification === "failed") return "failing";
  if (i.maxAgeMs !== null && i.now - i.lastSuccessAt > i.maxAgeMs) return "overdue";
  return "ok";
}

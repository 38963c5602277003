import type { CheckReport } from "./check.ts";

/** How many problems a check job's error names one by one; the result lists them all. */
const NAMED = 5;

/**
 * The one-paragraph error of a check job that found problems: the count by kind
 * (sorted by kind), then the first problems' messages, then how many more the
 * job's result lists. For example: `The repository check of /r found 3 problems
 * (1 artifact_missing, 2 temp_leftover): a; b; c`.
 */
export function checkFailureMessage(report: CheckReport, location: string): string {
  const byKind = new Map<string, number>();
  for (const p of report.problems) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
  const kinds = [...byKind.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, n]) => `${n} ${kind}`).join(", ");
  const n = report.problems.length;
  const named = report.problems.slice(0, NAMED).map((p) => p.message).join("; ");
  const more = n > NAMED ? `; and ${n - NAMED} more (the job's result lists every one)` : "";
  return `The repository check of ${location} found ${n} problem${
    n === 1 ? "" : "s"
  } (${kinds}): ${named}${more}`;
}

import type { Progress } from "./types.ts";

/** Progress as shown: `percent` (0-100, one decimal) whenever the total is known. */
export interface ShownProgress extends Progress {
  percent: number | null;
}

/**
 * The percent of a progress record: bytes_done over bytes_total, one decimal, at most
 * 100 (a total is sometimes an estimate the work overshoots); null without a total.
 */
export function percentOf(p: Pick<Progress, "bytes_done" | "bytes_total">): number | null {
  if (p.bytes_total === null || p.bytes_total <= 0) return null;
  return Math.min(100, Math.floor((p.bytes_done / p.bytes_total) * 1000) / 10);
}

/**
 * The progress a job record shows. A completed job shows its work as done: bytes_done
 * equals bytes_total (the total taken from bytes_done when none was known), 100 %. A
 * job that stopped short (failed, cancelled) shows where it stopped.
 */
export function shownProgress(p: Progress | null, status: string): ShownProgress | null {
  if (p === null) return null;
  if (status === "completed") {
    const total = p.bytes_total ?? p.bytes_done;
    return { ...p, bytes_done: total, bytes_total: total, percent: 100 };
  }
  // Until it completes, a job is not done, whatever an estimated total says.
  const percent = percentOf(p);
  return { ...p, percent: percent === null ? null : Math.min(percent, 99.9) };
}

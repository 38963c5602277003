import type { Retention } from "../jobs/types.ts";

export interface Candidate {
  key: string;
  created_at: Date;
}

export interface Decision {
  key: string;
  keep: boolean;
  /** Every rule that keeps it, e.g. "keep_last 3", "keep_daily 2026-11-20"; empty when removed. */
  reasons: string[];
}

export interface Plan {
  keep: Decision[];
  remove: Decision[];
}

type Period = "frequent" | "hourly" | "daily" | "weekly" | "monthly" | "yearly";
const PERIODS: Period[] = ["frequent", "hourly", "daily", "weekly", "monthly", "yearly"];

/** keep_frequent's period: 15 minutes, as in the snapshot policies cairn follows (zfs-auto-snapshot, sanoid). */
export const FREQUENT_MS = 15 * 60_000;

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

function localParts(date: Date, timeZone: string): LocalParts {
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const parts = Object.fromEntries(fmt.formatToParts(date).map((p) => [p.type, p.value]));
  return {
    year: +parts.year,
    month: +parts.month,
    day: +parts.day,
    hour: +parts.hour,
    minute: +parts.minute,
  };
}

/** ISO week: Monday-based, the week belongs to the year holding its Thursday. */
function isoWeek(p: LocalParts): string {
  const d = new Date(Date.UTC(p.year, p.month - 1, p.day));
  const dayNum = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - dayNum);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

/** The calendar bucket of a backup for a period, in the schedule's time zone. */
export function periodKey(date: Date, period: Period, timeZone: string): string {
  const p = localParts(date, timeZone);
  const mm = String(p.month).padStart(2, "0");
  const dd = String(p.day).padStart(2, "0");
  switch (period) {
    case "frequent": {
      // Every UTC offset in use is a whole number of quarter hours, so UTC quarter hours
      // are local quarter hours too; the instant's quarter number keeps the two local
      // quarters of a DST fall-back apart, as for hourly.
      const q = Math.floor(date.getTime() / FREQUENT_MS);
      const mi = String(Math.floor(p.minute / 15) * 15).padStart(2, "0");
      return `${p.year}-${mm}-${dd}T${String(p.hour).padStart(2, "0")}:${mi}@${q}`;
    }
    case "hourly":
      // Two different instants can share a local hour across a DST fall-back; the
      // UTC offset is folded in so they stay distinct hours, as a clock shows them.
      return `${p.year}-${mm}-${dd}T${String(p.hour).padStart(2, "0")}@${
        Math.floor(date.getTime() / 3600000)
      }`;
    case "daily":
      return `${p.year}-${mm}-${dd}`;
    case "weekly":
      return isoWeek(p);
    case "monthly":
      return `${p.year}-${mm}`;
    case "yearly":
      return `${p.year}`;
  }
}

/**
 * restic-style retention: a backup is kept if any rule keeps it. keep_last keeps the
 * newest N; keep_<period> keeps the newest backup of each of the newest N periods
 * that have one (keep_frequent: 15-minute periods). `now` is a parameter only so callers can refuse future-dated
 * backups; the policy itself never reads a clock.
 */
export function applyPolicy(
  backups: Candidate[],
  policy: Retention,
  options: {
    timeZone?: string;
    /**
     * Keys of backups that passed verification: the newest of them is always kept
     * ("newest verified backup"), so a prune never leaves only unproven backups.
     */
    verified?: ReadonlySet<string>;
  } = {},
): Plan {
  const timeZone = options.timeZone ?? "UTC";
  const sorted = [...backups].sort((a, b) =>
    b.created_at.getTime() - a.created_at.getTime() || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  );
  const reasons = new Map<string, string[]>(sorted.map((b) => [b.key, []]));
  const keepLast = policy.keep_last ?? 0;
  sorted.slice(0, keepLast).forEach((b) => reasons.get(b.key)!.push(`keep_last ${keepLast}`));
  for (const period of PERIODS) {
    const n = policy[`keep_${period}` as keyof Retention] ?? 0;
    if (n <= 0) continue;
    const seen = new Set<string>();
    for (const b of sorted) {
      if (seen.size >= n) break;
      const bucket = periodKey(b.created_at, period, timeZone);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      reasons.get(b.key)!.push(`keep_${period} ${bucket.replace(/@\d+$/, "")}`);
    }
  }
  const newestVerified = options.verified
    ? sorted.find((b) => options.verified!.has(b.key))
    : undefined;
  if (newestVerified) reasons.get(newestVerified.key)!.push("newest verified backup");
  const plan: Plan = { keep: [], remove: [] };
  for (const b of sorted) {
    const r = reasons.get(b.key)!;
    (r.length ? plan.keep : plan.remove).push({ key: b.key, keep: r.length > 0, reasons: r });
  }
  return plan;
}

/** A policy with no rule at all keeps everything: an empty retention is not "delete all". */
export function hasAnyRule(policy: Retention): boolean {
  return Object.values(policy).some((v) => typeof v === "number" && v > 0);
}

/** 1536 -> "1.5 KiB": binary units, one decimal. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** A duration in ms as "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** An instant as "2026-11-30 10:45 UTC" (the daemon's clock, shown in UTC). */
export function formatTime(at: number | string | null | undefined): string {
  if (at === null || at === undefined) return "–";
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return "–";
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** "5 min ago" for an instant in the past. */
export function formatAge(at: number | null | undefined, now: number): string {
  return at === null || at === undefined ? "–" : `${formatDuration(now - at)} ago`;
}

import type { Progress } from "../jobs/types.ts";
import type { Job } from "../jobs/types.ts";

const encoder = new TextEncoder();

export function out(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

export function err(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024, i++);
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return (hh ? `${hh}:` : "") + `${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`;
}

/** A live progress line on stderr, only when stderr is a terminal. */
export class ProgressLine {
  readonly #enabled = Deno.stderr.isTerminal();
  readonly #started = Date.now();
  #last = 0;
  #shown = false;

  update(job: Job, p: Progress): void {
    if (!this.#enabled) return;
    const now = Date.now();
    if (now - this.#last < 200) return;
    this.#last = now;
    const elapsed = now - this.#started;
    const rate = elapsed > 0 ? (p.bytes_done * 1000) / elapsed : 0;
    const total = p.bytes_total
      ? ` / ${formatBytes(p.bytes_total)} (${Math.floor((p.bytes_done / p.bytes_total) * 100)}%)`
      : "";
    const line = `${job.kind} ${job.client_name ?? ""} ${p.phase ?? ""}  ${
      formatBytes(p.bytes_done)
    }${total}  ${formatBytes(rate)}/s  ${formatDuration(elapsed)}`;
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
    this.#shown = true;
  }

  clear(): void {
    if (this.#shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    this.#shown = false;
  }
}

export function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join("  "))
    .join("\n");
}

/**
 * Who a process is, precisely enough to tell later whether it is still alive: its
 * pid is reused, so a pid alone is not enough. A process is named by
 * host (hostname, Linux boot id, pid namespace) + pid + start time (clock ticks
 * since boot, field 22 of /proc/<pid>/stat, see proc(5)). Where /proc is missing
 * (not Linux) nothing is ever judged dead, so nothing is taken back early.
 */

export interface ProcessId {
  /** hostname, boot id and pid namespace: the scope in which `pid` means something. */
  host: string;
  pid: number;
  /** The start time from /proc/<pid>/stat, or "?" where unknown. */
  start: string;
}

/** proc(5): "pid (comm) state ppid ..."; comm may hold spaces and ')'. Field 22 is starttime. */
export function parseStatStart(stat: string): string | null {
  const close = stat.lastIndexOf(")");
  if (close === -1) return null;
  const fields = stat.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const start = fields[19];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** The start time of `pid`, or null when there is no such process (or no /proc). */
export function processStart(pid: number): string | null {
  const stat = readText(`/proc/${pid}/stat`);
  return stat === null ? null : parseStatStart(stat);
}

let hostCache: string | null = null;

/** This host's identity: hostname, boot id and pid namespace (containers share a kernel). */
export function hostIdentity(): string {
  if (hostCache !== null) return hostCache;
  let name = "unknown";
  try {
    name = Deno.hostname();
  } catch { /* no --allow-sys: the rest still tells hosts apart */ }
  const boot = readText("/proc/sys/kernel/random/boot_id")?.trim() ?? "?";
  let ns = "?";
  try {
    ns = Deno.readLinkSync("/proc/self/ns/pid").replace(/^pid:\[(\d+)\]$/, "$1");
  } catch { /* not Linux */ }
  hostCache = `${name.replace(/[:/\s]/g, "_")}/${boot}/${ns}`;
  return hostCache;
}

let selfCache: ProcessId | null = null;

export function currentProcess(): ProcessId {
  selfCache ??= { host: hostIdentity(), pid: Deno.pid, start: processStart(Deno.pid) ?? "?" };
  return selfCache;
}

/**
 * Whether the process `id` names is known to be gone: it ran on this host (same
 * hostname, boot and pid namespace) and its pid is free now or belongs to a process
 * started at another time. "alive" when it may still run, "unknown" for another
 * host (or when this host cannot tell).
 */
export function processState(id: ProcessId): "alive" | "dead" | "unknown" {
  const here = currentProcess();
  if (id.host !== here.host || id.host.split("/").includes("?")) {
    return "unknown";
  }
  if (id.start === "?") return "unknown";
  const start = processStart(id.pid);
  return start === id.start ? "alive" : "dead";
}

/** A lease owner: `cairn1 <host> <pid> <start> <nonce>` (space-separated: none of them holds one). */
export function formatOwner(id: ProcessId, nonce: string): string {
  return `cairn1 ${id.host} ${id.pid} ${id.start} ${nonce}`;
}

/** The process behind a lease owner written by formatOwner; null for any other text. */
export function parseOwner(owner: string | null): ProcessId | null {
  if (!owner) return null;
  const m = /^cairn1 (\S+) (\d+) (\d+|\?) \S+$/.exec(owner);
  return m ? { host: m[1], pid: Number(m[2]), start: m[3] } : null;
}

/** A directory or file name for what `id` owns on disk: `<pid>-<start>`. */
export function ownerTag(id: ProcessId = currentProcess()): string {
  return `${id.pid}-${id.start === "?" ? "x" : id.start}`;
}

/** The process a name made by ownerTag points at (on this host), or null. */
export function parseOwnerTag(name: string): ProcessId | null {
  const m = /^(\d+)-(\d+|x)(?:$|[-.])/.exec(name);
  return m ? { host: hostIdentity(), pid: Number(m[1]), start: m[2] === "x" ? "?" : m[2] } : null;
}

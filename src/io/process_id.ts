import { runCommand } from "../engines/process.ts";

/**
 * Who a process is, precisely enough to tell later whether it is still alive: its
 * pid is reused, so a pid alone is not enough. A process is named by
 * host (hostname, Linux boot id, pid namespace) + pid + start time (clock ticks
 * since boot, field 22 of /proc/<pid>/stat, see proc(5)). Where /proc is missing
 * (not Linux) nothing is ever judged dead, so nothing is taken back early.
 *
 * Deno refuses /proc to a process without --allow-all (cairn runs with narrower
 * permissions), so /proc is read through coreutils (`head`, `stat`) when it must.
 */

export interface ProcessId {
  /** hostname, boot id and pid namespace: the scope in which `pid` means something. */
  host: string;
  pid: number;
  /** The start time from /proc/<pid>/stat, or "?" where unknown. */
  start: string;
}

/**
 * proc(5) field 3, the state letter: "Z" (zombie) and "X" (dead) are processes that
 * have exited and only wait to be reaped; they run nothing and hold no lease.
 */
export function parseStatState(stat: string): string | null {
  const close = stat.lastIndexOf(")");
  if (close === -1) return null;
  return stat.slice(close + 1).trim().split(/\s+/)[0] ?? null;
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

/**
 * `head -v -n 1 a b` prints "==> a <==" before each file's first line and says
 * nothing on stdout for a file it cannot open: the first line of each readable file.
 */
export function parseHeadOutput(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /^==> (.*) <==\n(.*)$/gm;
  for (const m of text.matchAll(re)) out.set(m[1], m[2]);
  return out;
}

/** The first line of each of `paths` that exists (absent from the map otherwise). */
async function firstLines(paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (paths.length === 0) return out;
  let direct = true;
  for (const p of paths) {
    try {
      out.set(p, Deno.readTextFileSync(p).split("\n")[0]);
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        direct = false;
        break;
      }
      // NotFound: no such process (or no /proc); the map says so by leaving it out.
    }
  }
  if (direct) return out;
  try {
    const res = await runCommand("head", ["-v", "-n", "1", "--", ...paths], { stderr: "null" });
    return parseHeadOutput(new TextDecoder().decode(res.stdout));
  } catch {
    return new Map(); // no coreutils: nothing can be told
  }
}

let self: ProcessId | null = null;

/**
 * Learns this process's identity (once; later calls return at once). Must run
 * before currentProcess() is trusted: openServices does it.
 */
export async function initProcessId(): Promise<ProcessId> {
  if (self) return self;
  let name = "unknown";
  try {
    name = Deno.hostname();
  } catch { /* no --allow-sys: the rest still tells hosts apart */ }
  const boot = "/proc/sys/kernel/random/boot_id";
  const stat = `/proc/${Deno.pid}/stat`;
  const lines = await firstLines([boot, stat]);
  let ns = "?";
  try {
    ns = Deno.readLinkSync("/proc/self/ns/pid").replace(/^pid:\[(\d+)\]$/, "$1");
  } catch {
    try {
      const res = await runCommand("stat", ["-L", "-c", "%i", "/proc/self/ns/pid"], {
        stderr: "null",
      });
      const text = new TextDecoder().decode(res.stdout).trim();
      if (res.success && /^\d+$/.test(text)) ns = text;
    } catch { /* not Linux */ }
  }
  const host = `${name.replace(/[:/\s]/g, "_")}/${lines.get(boot)?.trim() || "?"}/${ns}`;
  const start = lines.has(stat) ? parseStatStart(lines.get(stat)!) ?? "?" : "?";
  self = { host, pid: Deno.pid, start };
  return self;
}

/** This process (initProcessId must have run; before that, an identity that judges nothing). */
export function currentProcess(): ProcessId {
  return self ?? { host: "?", pid: Deno.pid, start: "?" };
}

/** Whether an identity is complete enough to judge its process dead. */
function judgeable(id: ProcessId): boolean {
  return id.start !== "?" && !id.host.split("/").includes("?");
}

/**
 * For each of `ids`: "dead" when it ran on this host (same hostname, boot and pid
 * namespace) and its pid is free now or belongs to a process started at another
 * time; "alive" when it may still run; "unknown" for another host (or when this
 * host cannot tell). One `head` for all of them.
 */
export async function processStates(
  ids: ProcessId[],
): Promise<Array<"alive" | "dead" | "unknown">> {
  const here = await initProcessId();
  const local = ids.filter((id) => judgeable(here) && judgeable(id) && id.host === here.host);
  if (local.length === 0) return ids.map(() => "unknown");
  // pid 1 always runs: if its entry is missing, /proc hides other processes
  // (hidepid, ProtectProc=invisible) or cannot be read, and an absent pid proves nothing.
  const init = "/proc/1/stat";
  const paths = [...new Set([init, ...local.map((id) => `/proc/${id.pid}/stat`)])];
  const lines = await firstLines(paths);
  if (!lines.has(init)) return ids.map(() => "unknown");
  return ids.map((id) => {
    if (!local.includes(id)) return "unknown";
    const line = lines.get(`/proc/${id.pid}/stat`);
    // A killed process lingers as a zombie until its parent reaps it: exited all the same.
    const exited = line !== undefined && /^[ZX]$/.test(parseStatState(line) ?? "");
    return line !== undefined && !exited && parseStatStart(line) === id.start ? "alive" : "dead";
  });
}

/**
 * The identity of another process on this host (a child just spawned), start time
 * from its /proc/<pid>/stat ("?" when it cannot be read: never judged dead then).
 */
export async function processIdOf(pid: number): Promise<ProcessId> {
  const here = await initProcessId();
  const stat = `/proc/${pid}/stat`;
  const line = (await firstLines([stat])).get(stat);
  return { host: here.host, pid, start: line ? parseStatStart(line) ?? "?" : "?" };
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
  return m
    ? { host: currentProcess().host, pid: Number(m[1]), start: m[2] === "x" ? "?" : m[2] }
    : null;
}

/** Of `names` made by ownerTag, those whose process is known to be gone. */
export async function deadTags(names: string[]): Promise<Set<string>> {
  const parsed = names.map((n) => ({ n, id: parseOwnerTag(n) })).filter((x) => x.id !== null);
  const states = await processStates(parsed.map((x) => x.id!));
  return new Set(parsed.filter((_, i) => states[i] === "dead").map((x) => x.n));
}

import { dirname, join } from "node:path";
import { z } from "zod";
import type { Config } from "../config/schema.ts";
import { CairnError, toError } from "../errors.ts";
import { logger } from "../log.ts";
import { initProcessId, processStates } from "../io/process_id.ts";
import type { JobStore } from "./store.ts";

/**
 * Who works on a job store, so that `cairn store copy` never reads (or writes) a store
 * something else is changing: every daemon and every one-off CLI job command (backup,
 * restore, verify, prune) holds the store's use lock shared for as long as it runs, and
 * the copy holds it exclusively for the whole copy, on its source and its target. So a
 * copy refuses while any of them runs, and one that starts during a copy refuses at once
 * (it does not wait: a daemon blocked at start-up for an unknown time is worse than a
 * clear error), naming who holds the store.
 *
 * - sqlite, jsonl: a file lock (flock, Deno.FsFile.lock) on `<path>.daemon.lock` (the name
 *   earlier versions' daemons lock too). Each holder also writes who it is to a file of its
 *   own in `<path>.users/` (see UseRecord), removed when it lets go; the file of a holder
 *   whose process is gone (killed) is ignored, and removed by the next one that reads it.
 * - postgres: a session-level advisory lock on STORE_USE_LOCK_KEY (postgres_sql.ts),
 *   `pg_try_advisory_lock_shared` / `pg_try_advisory_lock`, on a connection kept for it;
 *   the holders are the rows of cairn_store_users whose backend holds the lock
 *   (PostgresStore.holdUse). The server releases it when the holder's session ends.
 */
export const StoreUserSchema = z.object({
  role: z.enum(["daemon", "cli", "copy"]),
  /** The command: "daemon", "backup", "restore", "verify", "prune", "store copy". */
  command: z.string(),
  pid: z.number().int(),
  /** The host name. */
  host: z.string(),
  /** A daemon's node name (config `node.name`). */
  node: z.string().optional(),
  /** When it took the lock (epoch ms). */
  since: z.number(),
});
export type StoreUser = z.infer<typeof StoreUserSchema>;

/** A holder as its record file holds it: who, its process identity (to tell it is gone), a nonce. */
const UseRecordSchema = StoreUserSchema.extend({
  proc: z.object({ host: z.string(), pid: z.number().int(), start: z.string() }),
  nonce: z.string(),
});
type UseRecord = z.infer<typeof UseRecordSchema>;

/** A holder as another process (or the database) recorded it; null when it is not one. */
export function parseStoreUser(value: unknown): StoreUser | null {
  const parsed = StoreUserSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

export interface StoreUseLock {
  /**
   * Whether the lock is still held. A file lock always is until released; an advisory
   * lock is lost with its session (a connection cut, the server restarted).
   */
  held?(): Promise<boolean>;
  /**
   * Takes a lost advisory lock again (a long-running holder calls it now and then):
   * "held" (never lost), "retaken", or "refused" (a copy took the store meanwhile).
   * Throws when the server cannot be reached.
   */
  keep?(): Promise<"held" | "retaken" | "refused">;
  release(): Promise<void>;
}

/** This process as a user of a store. */
export function storeUser(
  role: StoreUser["role"],
  command: string,
  node?: string,
): StoreUser {
  let host = "unknown";
  try {
    host = Deno.hostname();
  } catch { /* no --allow-sys */ }
  return { role, command, pid: Deno.pid, host, ...(node ? { node } : {}), since: Date.now() };
}

/** "a cairn daemon (node web-1, pid 41 on host web-1)", "a one-off `cairn backup` (pid 7 on host h)". */
export function describeUser(u: StoreUser): string {
  const where = `pid ${u.pid} on host ${u.host}`;
  const since = `since ${new Date(u.since).toISOString().replace(/\.\d+Z$/, "Z")}`;
  switch (u.role) {
    case "daemon":
      return `a cairn daemon (${u.node ? `node ${u.node}, ` : ""}${where}, ${since})`;
    case "cli":
      return `a one-off \`cairn ${u.command}\` (${where}, ${since})`;
    case "copy":
      return `\`cairn store copy\` (${where}, ${since})`;
  }
}

/** A holder's record as its file holds it (JSON), or null for anything else. */
export function parseUseRecord(text: string): UseRecord | null {
  try {
    const parsed = UseRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null; // cut short by a crash while it was written
  }
}

/** The error a refused user gets: what holds the store, and what to do. */
export function lockedError(
  label: string,
  wanted: StoreUser["role"],
  holders: StoreUser[],
): CairnError {
  const copying = holders.filter((h) => h.role === "copy");
  const who = holders.length ? holders.map(describeUser).join(", ") : null;
  if (wanted !== "copy") {
    const by = copying.length ? copying.map(describeUser).join(", ") : who ?? "another process";
    return new CairnError(
      "STORE_LOCKED",
      `The job store ${label} is locked: store copy in progress (${by}); ${
        wanted === "daemon" ? "start the daemon" : "run the command again"
      } when the copy has finished`,
    );
  }
  const users = who ?? "a process that has not said who it is yet";
  return new CairnError(
    "STORE_LOCKED",
    `The job store ${label} is in use by ${users}: stop the daemon or let the job finish before copying the store`,
  );
}

function lockPath(store: Config["store"]): string {
  return `${store.path}.daemon.lock`;
}

function usersDir(store: Config["store"]): string {
  return `${store.path}.users`;
}

/**
 * The holders listed in `<path>.users/` whose process may still run, oldest first. The
 * files of dead ones are removed (a torn file is left: its writer may still be at it).
 */
export async function fileStoreUsers(store: Config["store"]): Promise<StoreUser[]> {
  const dir = usersDir(store);
  const found: Array<{ path: string; record: UseRecord }> = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const path = join(dir, entry.name);
      const record = parseUseRecord(await Deno.readTextFile(path).catch(() => ""));
      if (record) found.push({ path, record });
    }
  } catch {
    return []; // no directory: no holder ever wrote one
  }
  const states = await processStates(found.map((f) => f.record.proc));
  const live: UseRecord[] = [];
  for (const [i, f] of found.entries()) {
    if (states[i] === "dead") await Deno.remove(f.path).catch(() => {});
    else live.push(f.record);
  }
  return live.sort((a, b) => a.since - b.since).map(({ proc: _p, nonce: _n, ...user }) => user);
}

/** The file lock of a sqlite or jsonl store (see the interface's notes). */
async function holdFile(
  store: Config["store"],
  label: string,
  user: StoreUser,
  exclusive: boolean,
): Promise<StoreUseLock> {
  const path = lockPath(store);
  await Deno.mkdir(dirname(path), { recursive: true });
  const file = await Deno.open(path, { create: true, read: true, write: true });
  let locked = false;
  try {
    locked = await file.tryLock(exclusive);
  } catch { /* a file system without locks: treated as held by someone */ }
  if (!locked) {
    file.close();
    throw lockedError(label, user.role, await fileStoreUsers(store));
  }
  const record: UseRecord = { ...user, proc: await initProcessId(), nonce: crypto.randomUUID() };
  const mine = join(usersDir(store), `${record.pid}-${record.nonce}.json`);
  try {
    // Alone on the store: whatever is listed was left by killed holders.
    if (exclusive) await fileStoreUsers(store);
    await Deno.mkdir(usersDir(store), { recursive: true });
    await Deno.writeTextFile(mine, JSON.stringify(record));
  } catch (error) {
    file.close();
    throw error;
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      await Deno.remove(mine).catch(() => {});
      file.close();
    },
  };
}

/** The advisory lock of a postgres store (PostgresStore.holdUse). */
async function holdPostgres(
  store: JobStore,
  label: string,
  user: StoreUser,
  exclusive: boolean,
): Promise<StoreUseLock> {
  const { PostgresStore } = await import("./postgres.ts");
  if (!(store instanceof PostgresStore)) throw new Error("not a postgres store");
  const held = await store.holdUse(user, exclusive);
  if ("holders" in held) throw lockedError(label, user.role, held.holders);
  return held;
}

/**
 * Opens a store for `user` under its use lock: shared for a daemon or a CLI job
 * command, exclusive for a copy. The file lock is taken before the store is opened,
 * the advisory lock just after (it needs the connection). STORE_LOCKED naming the
 * holders when refused; nothing is left open then.
 */
export async function openInUse<T>(
  store: Config["store"],
  label: string,
  user: StoreUser,
  open: () => Promise<T>,
  parts: { store: (value: T) => JobStore; close: (value: T) => Promise<void> },
): Promise<{ value: T; lock: StoreUseLock }> {
  const exclusive = user.role === "copy";
  if (store.kind !== "postgres") {
    const lock = await holdFile(store, label, user, exclusive);
    try {
      return { value: await open(), lock };
    } catch (error) {
      await lock.release();
      throw error;
    }
  }
  const value = await open();
  try {
    return { value, lock: await holdPostgres(parts.store(value), label, user, exclusive) };
  } catch (error) {
    await parts.close(value);
    throw error;
  }
}

/**
 * For a long-running holder (a daemon, on each node heartbeat): takes its store lock
 * again if its session was cut, and says so in the log; never throws.
 */
export async function keepStoreUse(lock: StoreUseLock, label: string): Promise<void> {
  if (!lock.keep) return;
  try {
    const state = await lock.keep();
    if (state === "retaken") {
      logger.warn("The job store's use lock went with a cut connection; it is held again", {
        store: label,
      });
    } else if (state === "refused") {
      logger.error(
        "The job store's use lock went with a cut connection and a store copy holds the store now: stop this daemon until the copy has finished",
        { store: label },
      );
    }
  } catch (error) {
    logger.warn("Could not check the job store's use lock", {
      store: label,
      error: toError(error).message,
    });
  }
}

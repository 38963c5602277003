/**
 * The fresh databases of whole-database restores (`<db>_cairn_new_<8 hex>`, restore.ts)
 * that a killed process left behind. A restore marks its fresh database, right after
 * creating it, with who made it (`COMMENT ON DATABASE`: the process identity of
 * io/process_id.ts); the swap clears the mark in the transaction that renames it. The
 * sweep drops a marked database only when its maker is provably dead: a process of this
 * host (same hostname, boot and pid namespace) whose pid is free or reused. A restore
 * still running, here or on another node, is never touched, and neither is a database
 * without the mark (made by an older cairn, or killed between CREATE DATABASE and the
 * COMMENT: the one statement the mark cannot share a transaction with).
 */
import { logger } from "../../log.ts";
import {
  currentProcess,
  formatOwner,
  initProcessId,
  parseOwner,
  processStates,
} from "../../io/process_id.ts";
import { quoteIdent } from "./catalog.ts";
import { pgError, type PgTarget, type Sql } from "./conn.ts";
import { literal, openAdmin } from "./databases.ts";

/** The suffix restore.ts gives a fresh database (after sideName's cut of the base). */
export const FRESH_SUFFIX = /_cairn_new_[0-9a-f]{8}$/;

/** What a fresh database's comment holds while its restore runs. */
export interface RestoreMark {
  /** The restoring process, as formatOwner writes it. */
  owner: string;
  /** When the database was made (ISO 8601). */
  created_at: string;
}

/** The comment text marking a fresh database as this process's (JSON under `cairn_restore`). */
export function restoreMark(at: Date = new Date()): string {
  const mark: RestoreMark = {
    owner: formatOwner(currentProcess(), "restore"),
    created_at: at.toISOString(),
  };
  return JSON.stringify({ cairn_restore: mark });
}

/** The mark a database comment holds, or null for any other comment (or none). */
export function parseRestoreMark(comment: string | null): RestoreMark | null {
  if (!comment) return null;
  try {
    const m = JSON.parse(comment)?.cairn_restore;
    return typeof m?.owner === "string" && typeof m?.created_at === "string"
      ? { owner: m.owner, created_at: m.created_at }
      : null;
  } catch {
    return null;
  }
}

/** Marks `fresh` (just created by this process) as a restore in progress. */
export async function markFresh(admin: Sql, fresh: string): Promise<void> {
  await initProcessId();
  await admin.unsafe(`COMMENT ON DATABASE ${quoteIdent(fresh)} IS ${literal(restoreMark())}`);
}

/** Whether the process behind a mark's owner is provably gone (see processStates). */
export async function ownerIsDead(owner: string): Promise<boolean> {
  const id = parseOwner(owner);
  if (!id) return false;
  const [state] = await processStates([id]);
  return state === "dead";
}

/**
 * Drops every fresh restore database on `server` whose maker is dead (`isDead`),
 * logging each; returns their names. Databases it cannot judge are left, silently.
 */
export async function sweepFreshDatabases(
  server: PgTarget,
  isDead: (owner: string) => Promise<boolean> = ownerIsDead,
): Promise<string[]> {
  const admin = await openAdmin(server);
  const dropped: string[] = [];
  try {
    const rows = await admin.unsafe<Array<{ datname: string; comment: string | null }>>(
      `SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database
       WHERE datname ~ '_cairn_new_[0-9a-f]{8}$' ORDER BY datname`,
    );
    for (const { datname, comment } of rows) {
      if (!FRESH_SUFFIX.test(datname)) continue;
      const mark = parseRestoreMark(comment);
      if (!mark || !(await isDead(mark.owner))) continue;
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(datname)} WITH (FORCE)`);
      } catch (error) {
        throw pgError(error, server, datname);
      }
      logger.info("Dropped the database a killed restore left", {
        database: datname,
        server: `${server.host}:${server.port}`,
        restore_owner: mark.owner,
        restore_started_at: mark.created_at,
      });
      dropped.push(datname);
    }
  } finally {
    await admin.end({ timeout: 5 });
  }
  return dropped;
}

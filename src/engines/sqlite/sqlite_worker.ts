/// <reference lib="deno.worker" />
import { backup, DatabaseSync } from "node:sqlite";

/**
 * Runs the blocking SQLite work (the snapshot, integrity_check, counting) off the
 * main thread, so the daemon keeps serving and renewing leases meanwhile, and a
 * cancelled job can simply terminate this worker.
 */

export type SqliteRequest =
  | { op: "snapshot"; source: string; dest: string }
  | { op: "inspect"; path: string };

export type SqliteReply =
  | { ok: true; tables: Record<string, number>; sqlite_version: string; integrity?: string[] }
  | { ok: false; error: string };

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function countTables(db: DatabaseSync): Record<string, number> {
  const names = db.prepare(
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
  ).all() as Array<{ name: string }>;
  // No prototype: a table called "__proto__" is a key like any other.
  const out: Record<string, number> = Object.create(null);
  for (const { name } of names) {
    const row = db.prepare(`SELECT COUNT(*) AS n FROM ${quoteIdent(name)}`).get() as { n: number };
    out[name] = Number(row.n);
  }
  return out;
}

/** Pages per backup step: all of them, so the copy is taken inside one read transaction. */
const ALL_PAGES = 2 ** 31 - 1;

async function handle(req: SqliteRequest): Promise<SqliteReply> {
  if (req.op === "snapshot") {
    // The online backup API, not VACUUM INTO: VACUUM INTO needs ATTACH, which Deno
    // forbids unless the process holds every permission. One step copies every page
    // under a single read transaction, so a concurrent writer cannot tear the copy.
    // Read-only: cairn must never leave its own -wal or -shm files beside an app's database.
    const src = new DatabaseSync(req.source, { readOnly: true });
    try {
      src.exec("PRAGMA busy_timeout = 30000");
      await backup(src, req.dest, { rate: ALL_PAGES });
    } finally {
      src.close();
    }
    const copy = new DatabaseSync(req.dest, { readOnly: true });
    try {
      const { v } = copy.prepare("SELECT sqlite_version() AS v").get() as { v: string };
      return { ok: true, tables: countTables(copy), sqlite_version: v };
    } finally {
      copy.close();
    }
  }
  const db = new DatabaseSync(req.path, { readOnly: true });
  try {
    const integrity = (db.prepare("PRAGMA integrity_check").all() as Array<Record<string, string>>)
      .map((r) => String(Object.values(r)[0]));
    const { v } = db.prepare("SELECT sqlite_version() AS v").get() as { v: string };
    return {
      ok: true,
      tables: integrity[0] === "ok" ? countTables(db) : {},
      sqlite_version: v,
      integrity,
    };
  } finally {
    db.close();
  }
}

self.onmessage = async (event: MessageEvent<SqliteRequest>) => {
  let reply: SqliteReply;
  try {
    reply = await handle(event.data);
  } catch (error) {
    reply = { ok: false, error: (error as Error).message };
  }
  self.postMessage(reply);
};

/// <reference lib="deno.worker" />
import { DatabaseSync } from "node:sqlite";

/**
 * Runs the blocking SQLite work (VACUUM INTO, integrity_check, counting) off the
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
  const out: Record<string, number> = {};
  for (const { name } of names) {
    const row = db.prepare(`SELECT COUNT(*) AS n FROM ${quoteIdent(name)}`).get() as { n: number };
    out[name] = Number(row.n);
  }
  return out;
}

function handle(req: SqliteRequest): SqliteReply {
  if (req.op === "snapshot") {
    // Read-only: cairn must never leave its own -wal or -shm files beside an app's database.
    const src = new DatabaseSync(req.source, { readOnly: true });
    try {
      src.exec("PRAGMA busy_timeout = 30000");
      src.prepare("VACUUM INTO ?").run(req.dest);
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
    return { ok: true, tables: integrity[0] === "ok" ? countTables(db) : {}, sqlite_version: v, integrity };
  } finally {
    db.close();
  }
}

self.onmessage = (event: MessageEvent<SqliteRequest>) => {
  let reply: SqliteReply;
  try {
    reply = handle(event.data);
  } catch (error) {
    reply = { ok: false, error: (error as Error).message };
  }
  self.postMessage(reply);
};

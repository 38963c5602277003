import { join, resolve } from "node:path";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError, isCairnError } from "../../errors.ts";
import { VERSION } from "../../version.ts";
import type { Engine, EngineContext, RestoreRequest, VerifyRequest } from "../engine.ts";
import {
  refuseOccupied,
  removeQuietly,
  siblingTemp,
  sweepSiblingTemps,
  writeStreamToFile,
} from "../fs_util.ts";
import { runSqliteWorker } from "./run_worker.ts";

type SqliteClient = Extract<ClientConfig, { kind: "sqlite" }>;

function compareTables(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const problems: string[] = [];
  // Own keys only: a table called "constructor" must not meet Object.prototype's.
  const own = (o: Record<string, number>, name: string) =>
    Object.hasOwn(o, name) ? o[name] : undefined;
  for (const name of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (own(expected, name) !== own(actual, name)) {
      problems.push(
        `table ${name}: ${own(actual, name) ?? "missing"} rows, the manifest says ${
          own(expected, name) ?? "absent"
        }`,
      );
    }
  }
  return problems;
}

function reword(error: unknown, path: string, clientName: string): unknown {
  if (isCairnError(error, "SOURCE_UNAVAILABLE")) {
    const msg = error.message;
    // Cannot open, or not a database: so until someone acts, so not retried.
    if (/unable to open|no such file/i.test(msg)) {
      return new CairnError(
        "SOURCE_REFUSED",
        `Cannot open the SQLite database ${path} of client ${clientName}: ${
          msg.replace(/^SQLite: /, "")
        }`,
      );
    }
    if (/not a database/i.test(msg)) {
      return new CairnError(
        "SOURCE_REFUSED",
        `${path} (client ${clientName}) is not a SQLite database`,
      );
    }
  }
  return error;
}

/**
 * A SQLite database copied online with SQLite's backup API (a consistent snapshot
 * even while another process writes), never with a plain file copy.
 */
export const sqliteEngine: Engine<SqliteClient> = {
  kind: "sqlite",
  extension: "sqlite",

  async backup(ctx: EngineContext<SqliteClient>) {
    const source = resolve(ctx.client.path);
    const info = await Deno.stat(source).catch(() => null);
    if (!info?.isFile) {
      throw new CairnError(
        "SOURCE_REFUSED",
        `The SQLite database ${source} of client ${ctx.clientName} does not exist`,
      );
    }
    const dir = await ctx.scratch.dir("sqlite-");
    const cleanup = () => removeQuietly(dir);
    try {
      const dest = join(dir, "snapshot.sqlite");
      ctx.progress({ bytes_done: 0, phase: "snapshot" });
      const snap = await runSqliteWorker({ op: "snapshot", source, dest }, ctx.signal)
        .catch((e) => Promise.reject(reword(e, source, ctx.clientName)));
      const size = (await Deno.stat(dest)).size;
      ctx.progress({ bytes_done: 0, bytes_total: size, phase: "uploading" });
      const file = await Deno.open(dest, { read: true });
      const rows = Object.values(snap.tables).reduce((a, b) => a + b, 0);
      return {
        body: file.readable,
        cleanup,
        facts: Promise.resolve({
          tool_versions: { cairn: VERSION, sqlite: snap.sqlite_version },
          facts: { path: source, tables: snap.tables, database_bytes: size },
          counters: { tables: Object.keys(snap.tables).length, rows },
        }),
      };
    } catch (error) {
      await cleanup();
      throw error;
    }
  },

  async restore(ctx: EngineContext<SqliteClient>, request: RestoreRequest) {
    const target = resolve(request.target ?? ctx.client.path);
    await refuseOccupied(target, request.replace);
    // A restore killed part way left its half-written copy beside the target.
    await sweepSiblingTemps(target);
    const tmp = siblingTemp(target, `restore-${ctx.jobId}`);
    try {
      await writeStreamToFile(await request.open(), tmp, ctx.signal);
      const check = await runSqliteWorker({ op: "inspect", path: tmp }, ctx.signal);
      if (check.integrity?.[0] !== "ok") {
        throw new CairnError(
          "VERIFY_FAILED",
          `The restored database fails integrity_check: ${check.integrity?.slice(0, 3).join("; ")}`,
        );
      }
      const old = await Deno.stat(target).catch(() => null);
      if (old?.mode) await Deno.chmod(tmp, old.mode & 0o777);
      // A stale WAL beside the new file would be replayed into it: remove it first.
      for (const suffix of ["-wal", "-shm", "-journal"]) {
        await Deno.remove(target + suffix).catch(() => {});
      }
      await Deno.rename(tmp, target);
      return { target, tables: Object.keys(check.tables).length };
    } catch (error) {
      await removeQuietly(tmp);
      throw error;
    }
  },

  async verify(ctx: EngineContext<SqliteClient>, request: VerifyRequest) {
    const dir = await ctx.scratch.dir("sqlite-verify-");
    try {
      const path = join(dir, "copy.sqlite");
      await writeStreamToFile(await request.open(), path, ctx.signal);
      const check = await runSqliteWorker({ op: "inspect", path }, ctx.signal);
      if (check.integrity?.[0] !== "ok") {
        throw new CairnError(
          "VERIFY_FAILED",
          `Backup ${request.manifest.key} fails integrity_check: ${
            check.integrity?.slice(0, 3).join("; ")
          }`,
        );
      }
      const expected = (request.manifest.facts.tables ?? {}) as Record<string, number>;
      const problems = compareTables(expected, check.tables);
      if (problems.length) {
        throw new CairnError(
          "VERIFY_FAILED",
          `Backup ${request.manifest.key} does not match its manifest: ${problems.join("; ")}`,
        );
      }
      return { integrity: "ok", tables: check.tables };
    } finally {
      await removeQuietly(dir);
    }
  },
};

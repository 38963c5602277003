import { CairnError, isCairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import type { EngineContext, RestoreRequest } from "../engine.ts";
import {
  compareCounts,
  countRows,
  displayName,
  manifestTables,
  quoteIdent,
  type TableRows,
} from "./catalog.ts";
import { pgError, type PgTarget, type RestoreDestination, type Sql } from "./conn.ts";
import {
  copyDatabaseProperties,
  type DatabaseFacts,
  databaseFacts,
  databaseHasObjects,
  dropDatabase,
  literal,
  open,
  openAdmin,
  sideName,
  swap,
} from "./databases.ts";
import { markFresh } from "./leftovers.ts";
import { archiveList, archiveScript, restoreInto } from "./pg_restore.ts";
import {
  parseList,
  parseScript,
  parseTableName,
  referencedRoles,
  selectTables,
  type TocEntry,
} from "./toc.ts";

/** A role as SQL would name it: quoted only when it must be. */
const roleName = (r: string) => /^[a-z_][a-z0-9_$]*$/.test(r) ? r : quoteIdent(r);

/** The roles the archive's objects need that the target server lacks: a clear error, before any write. */
async function assertRolesExist(
  server: PgTarget,
  admin: Sql,
  entries: TocEntry[],
  key: string,
): Promise<void> {
  const needed = referencedRoles(entries);
  if (needed.length === 0) return;
  const present = new Set(
    (await admin.unsafe<Array<{ rolname: string }>>(
      "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
      [needed],
    )).map((r) => r.rolname),
  );
  const missing = needed.filter((r) => !present.has(r));
  if (missing.length === 0) return;
  throw new CairnError(
    "VALIDATION_FAILED",
    `PostgreSQL at ${server.host}:${server.port} has no role ${
      missing.map(roleName).join(", ")
    }, which own${missing.length === 1 ? "s" : ""} or ${
      missing.length === 1 ? "is" : "are"
    } granted objects in ${key}: create ${
      missing.length === 1 ? "it" : "them"
    } first (CREATE ROLE), or restore without owners and grants ("no_owner": true, --no-owner)`,
    { details: missing.map((role) => ({ path: "role", message: `missing: ${role}` })) },
  );
}

async function writeListFile(
  lines: string[],
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await Deno.makeTempFile({ prefix: "cairn-pg-list-" });
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return { path, remove: () => Deno.remove(path).catch(() => {}) };
}

/**
 * Restores a whole database by swap (NOTES "PostgreSQL restore by swap"): into a
 * fresh database beside the target, object by object (no --single-transaction:
 * the lock table of a default server cannot hold one lock per object of a few
 * thousand tables), then its row counts are checked against the manifest. Only
 * then: connections to the old database are blocked and ended, it is renamed
 * aside, and the fresh one takes its name. The old database is dropped, or kept
 * as `<name>_pre_restore_<UTC stamp>` with `keep_old`. Any failure before the
 * swap drops the fresh database; the target is untouched.
 */
export async function restoreWhole(
  ctx: EngineContext,
  request: RestoreRequest,
  dest: RestoreDestination,
): Promise<Record<string, unknown>> {
  const { server, database } = dest;
  const noOwner = request.no_owner ?? false;
  let admin = await openAdmin(server, database);
  let existing: DatabaseFacts | null;
  let fresh: string;
  try {
    existing = await databaseFacts(admin, database);
    if (existing && !request.replace && (await databaseHasObjects(server, database))) {
      throw new CairnError(
        "TARGET_NOT_EMPTY",
        `Restore target database ${dest.display} is not empty: pass --yes on the command line or "replace": true to overwrite it`,
      );
    }
    if (!noOwner) {
      ctx.progress({ bytes_done: 0, phase: "checking roles" });
      const entries = parseScript(await archiveScript(ctx, request));
      await assertRolesExist(server, admin, entries, request.manifest.key);
    }
    fresh = sideName(database, `_cairn_new_${crypto.randomUUID().slice(0, 8)}`);
    const like = existing
      ? ` ENCODING ${literal(existing.encoding)} LC_COLLATE ${literal(existing.collate)} LC_CTYPE ${
        literal(existing.ctype)
      }${
        existing.provider === "i" && existing.icuLocale
          ? ` LOCALE_PROVIDER icu ICU_LOCALE ${literal(existing.icuLocale)}`
          : ""
      }${noOwner ? "" : ` OWNER ${quoteIdent(existing.owner)}`}`
      : "";
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(fresh)} TEMPLATE template0${like}`);
  } catch (error) {
    await admin.end({ timeout: 5 });
    throw pgError(error, server, database);
  }
  let swapped = false;
  try {
    try {
      // Who made it, so that a sweep can drop it if this process is killed (leftovers.ts).
      await markFresh(admin, fresh).catch((e) =>
        logger.warn("Could not mark the restore's fresh database; if killed, it stays", {
          database: fresh,
          error: String(e),
        })
      );
      if (existing) await copyDatabaseProperties(admin, existing, fresh, noOwner);
    } finally {
      await admin.end({ timeout: 5 });
    }
    ctx.progress({ bytes_done: 0, bytes_total: request.manifest.size_bytes, phase: "restoring" });
    await restoreInto(ctx, server, request, fresh, {
      noOwner,
      singleTransaction: false,
      clean: false,
    });
    ctx.progress({ bytes_done: 0, phase: "counting rows" });
    const sql = await open(server, fresh);
    let counted;
    try {
      counted = await countRows(sql, { signal: ctx.signal });
    } finally {
      await sql.end({ timeout: 5 });
    }
    const { problems } = compareCounts({
      tables: manifestTables(request.manifest.facts),
      large_objects: Number(request.manifest.facts.large_objects ?? 0),
    }, counted);
    if (problems.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `The restored copy of ${request.manifest.key} does not match its manifest, so ${dest.display} was left as it was: ${
          problems.join("; ")
        }`,
      );
    }
    ctx.signal.throwIfAborted();
    admin = await openAdmin(server, database);
    let kept: string | null = null;
    try {
      if (existing) {
        kept = await swap(admin, database, fresh);
      } else {
        // The restore mark goes with the rename, or neither happens (a kill between them).
        await admin.begin(async (tx) => {
          await tx.unsafe(`COMMENT ON DATABASE ${quoteIdent(fresh)} IS NULL`);
          await tx.unsafe(`ALTER DATABASE ${quoteIdent(fresh)} RENAME TO ${quoteIdent(database)}`);
        });
      }
      swapped = true;
    } finally {
      if (!swapped) await admin.end({ timeout: 5 });
    }
    try {
      if (kept && !request.keep_old) {
        await admin.unsafe(`DROP DATABASE ${quoteIdent(kept)} WITH (FORCE)`).then(
          () => kept = null,
          (e) =>
            logger.warn("Could not drop the database a restore replaced", {
              database: kept,
              error: String(e),
            }),
        );
      }
    } finally {
      await admin.end({ timeout: 5 });
    }
    return {
      target: dest.display,
      created: existing === null,
      replaced: existing !== null,
      kept_old: kept,
      owners: noOwner ? "not restored (no_owner)" : "restored",
      tables: counted.tables.length,
      rows: counted.tables.reduce((a, t) => a + t.rows, 0),
      large_objects: counted.large_objects,
    };
  } catch (error) {
    if (!swapped) {
      await dropDatabase(server, fresh).catch((e) =>
        logger.warn("Could not drop a failed restore's database", {
          database: fresh,
          error: String(e),
        })
      );
    }
    throw pgError(error, server, database);
  }
}

/**
 * Restores only `request.tables` into the target database, which keeps
 * everything else: the TOC entries of those tables and what belongs to them
 * (toc.ts selectTables) go to pg_restore with --use-list, --clean and
 * --single-transaction, so the tables are replaced at once or not at all (a few
 * tables need few locks). Unknown names, tables the target already has without
 * `replace`, and missing roles are refused before anything is written.
 */
export async function restoreTables(
  ctx: EngineContext,
  request: RestoreRequest,
  dest: RestoreDestination,
): Promise<Record<string, unknown>> {
  const { server, database } = dest;
  const noOwner = request.no_owner ?? false;
  const wanted = (request.tables ?? []).map((name) => {
    try {
      return parseTableName(name);
    } catch (error) {
      throw new CairnError("VALIDATION_FAILED", `Invalid table ${(error as Error).message}`);
    }
  });
  ctx.progress({ bytes_done: 0, phase: "reading the archive's contents" });
  const [script, listing] = [await archiveScript(ctx, request), await archiveList(ctx, request)];
  const entries = parseScript(script);
  const list = parseList(listing);
  const probe = selectTables(entries, list, wanted, {
    existing: () => false,
    missingSchemas: new Set(),
  });
  if (probe.unknown.length) {
    const available = entries.filter((e) => e.type === "TABLE").length;
    throw new CairnError(
      "VALIDATION_FAILED",
      `Backup ${request.manifest.key} has no table ${
        probe.unknown.map((t) => displayName(t.schema, t.table)).join(", ")
      } (it holds ${available} table${
        available === 1 ? "" : "s"
      }; names are schema.table, exact case, double quotes around parts with dots, quotes or spaces)`,
    );
  }
  const admin = await openAdmin(server, database);
  let created = false;
  try {
    if ((await admin`SELECT 1 FROM pg_database WHERE datname = ${database}`).length === 0) {
      await admin.unsafe(`CREATE DATABASE ${quoteIdent(database)} TEMPLATE template0`);
      created = true;
    }
  } catch (error) {
    throw pgError(error, server, database);
  } finally {
    await admin.end({ timeout: 5 });
  }
  try {
    const sql = await open(server, database);
    let selection;
    try {
      const present = await sql.unsafe<Array<{ schema: string; name: string }>>(
        `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'f')`,
      );
      const schemas = new Set(
        (await sql.unsafe<Array<{ nspname: string }>>("SELECT nspname FROM pg_namespace")).map((
          r,
        ) => r.nspname),
      );
      const has = new Set(present.map((p) => JSON.stringify([p.schema, p.name])));
      const missingSchemas = new Set(wanted.map((w) => w.schema).filter((s) => !schemas.has(s)));
      selection = selectTables(entries, list, wanted, {
        existing: (s, t) => has.has(JSON.stringify([s, t])),
        missingSchemas,
      });
      const clash = selection.tables.filter((t) => has.has(JSON.stringify([t.schema, t.table])));
      if (clash.length && !request.replace) {
        throw new CairnError(
          "TARGET_NOT_EMPTY",
          `Restore target database ${dest.display} already has ${
            clash.map((t) => displayName(t.schema, t.table)).join(", ")
          }: pass --yes on the command line or "replace": true to replace ${
            clash.length === 1 ? "it" : "them"
          }`,
        );
      }
      if (!noOwner) {
        const chosen = new Set(selection.list.map((l) => Number(l.split(";")[0])));
        const admin2 = await openAdmin(server, database);
        try {
          await assertRolesExist(
            server,
            admin2,
            entries.filter((e) => chosen.has(e.dumpId)),
            request.manifest.key,
          );
        } finally {
          await admin2.end({ timeout: 5 });
        }
      }
    } finally {
      await sql.end({ timeout: 5 });
    }
    const listFile = await writeListFile(selection.list);
    try {
      ctx.progress({ bytes_done: 0, bytes_total: request.manifest.size_bytes, phase: "restoring" });
      await restoreInto(ctx, server, request, database, {
        noOwner,
        singleTransaction: true,
        clean: true,
        listFile: listFile.path,
      });
    } catch (error) {
      if (isCairnError(error) && /depends on/.test(error.message)) {
        throw new CairnError(
          "TARGET_NOT_EMPTY",
          `${
            error.message.replace(/\.+$/, "")
          }. Nothing was changed: add those objects' tables to the list (--table on the command line, "tables" in the API), or restore the whole database`,
        );
      }
      throw error;
    } finally {
      await listFile.remove();
    }
    const check = await open(server, database);
    let counted: TableRows[];
    try {
      counted = (await countRows(check, { signal: ctx.signal })).tables.filter((t) =>
        selection.tables.some((s) => s.schema === t.schema && s.table === t.table)
      );
    } finally {
      await check.end({ timeout: 5 });
    }
    const recorded = manifestTables(request.manifest.facts);
    const expectedRows = (s: string, t: string) =>
      recorded.format === "split"
        ? recorded.tables.find((r) => r.schema === s && r.table === t)?.rows ?? null
        : recorded.tables[`${s}.${t}`] ?? null;
    const comparison = selection.tables.map((t) => ({
      ...t,
      manifest: expectedRows(t.schema, t.table),
      restored: counted.find((c) => c.schema === t.schema && c.table === t.table)?.rows ?? null,
    }));
    const wrong = comparison.filter((c) => c.manifest !== c.restored);
    if (wrong.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `Restored tables do not match the manifest of ${request.manifest.key}: ${
          wrong.map((c) =>
            `${
              displayName(c.schema, c.table)
            }: ${c.restored} rows restored, ${c.manifest} in the manifest`
          ).join("; ")
        }`,
      );
    }
    return {
      target: dest.display,
      created,
      owners: noOwner ? "not restored (no_owner)" : "restored",
      tables: comparison.length,
      rows: comparison.reduce((a, c) => a + (c.restored ?? 0), 0),
      restored_tables: comparison,
      ...(selection.skipped.length ? { foreign_keys_left_out: selection.skipped } : {}),
    };
  } catch (error) {
    if (created) {
      await dropDatabase(server, database).catch((e) =>
        logger.warn("Could not drop a failed restore's database", { database, error: String(e) })
      );
    }
    throw pgError(error, server, database);
  }
}

/**
 * Whole databases on a PostgreSQL server, for restores and rehearsals: sessions,
 * creation and dropping, the properties pg_dump leaves out (grants, settings),
 * and the swap that puts a restored copy in the place of a live database.
 */
import { isCairnError } from "../../errors.ts";
import { quoteIdent } from "./catalog.ts";
import { connect, pgError, type PgTarget, type Sql } from "./conn.ts";

/** A checked connection (one session) to `database` on `target`'s server; errors via pgError. */
export async function open(target: PgTarget, database = target.database): Promise<Sql> {
  const sql = connect(target, database);
  try {
    await sql`SELECT 1`;
    return sql;
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw pgError(error, target, database);
  }
}

/**
 * A maintenance connection for CREATE / DROP / ALTER DATABASE: the postgres
 * database, else template1; never `avoid` (a database cannot be renamed or
 * dropped by a session connected to it).
 */
export async function openAdmin(target: PgTarget, avoid?: string): Promise<Sql> {
  const first = avoid === "postgres" ? "template1" : "postgres";
  try {
    return await open(target, first);
  } catch (error) {
    if (isCairnError(error, "SOURCE_REFUSED") && /does not exist/.test(error.message)) {
      return await open(target, first === "postgres" ? "template1" : "postgres");
    }
    throw error;
  }
}

export async function dropDatabase(target: PgTarget, name: string): Promise<void> {
  const admin = await openAdmin(target, name);
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** `base` + `suffix`, `base` cut so the whole fits PostgreSQL's 63-byte names. */
export function sideName(base: string, suffix: string): string {
  return base.slice(0, 63 - suffix.length) + suffix;
}

/** `20261130T094721` (UTC): the moment in a kept database's name. */
export function stamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "");
}

export interface DatabaseFacts {
  oid: number;
  owner: string;
  encoding: string;
  collate: string;
  ctype: string;
  provider: string;
  icuLocale: string | null;
  acl: Array<{ grantee: string | null; privilege: string; grantable: boolean }> | null;
  settings: Array<{ role: string | null; config: string[] }>;
}

export async function databaseFacts(admin: Sql, name: string): Promise<DatabaseFacts | null> {
  const rows = await admin.unsafe<
    Array<{
      oid: number;
      owner: string;
      encoding: string;
      datcollate: string;
      datctype: string;
      datlocprovider: string;
      daticulocale: string | null;
      has_acl: boolean;
    }>
  >(
    `SELECT d.oid::int AS oid, pg_get_userbyid(d.datdba) AS owner,
       pg_encoding_to_char(d.encoding) AS encoding, d.datcollate, d.datctype,
       d.datlocprovider::text AS datlocprovider, d.daticulocale,
       d.datacl IS NOT NULL AS has_acl
     FROM pg_database d WHERE d.datname = $1`,
    [name],
  );
  if (rows.length === 0) return null;
  const d = rows[0];
  const acl = d.has_acl
    ? await admin.unsafe<Array<{ grantee: string | null; privilege: string; grantable: boolean }>>(
      `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
         a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1`,
      [name],
    )
    : null;
  const settings = await admin.unsafe<Array<{ role: string | null; config: string[] }>>(
    `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role,
       s.setconfig AS config
     FROM pg_db_role_setting s WHERE s.setdatabase = $1`,
    [d.oid],
  );
  return {
    oid: d.oid,
    owner: d.owner,
    encoding: d.encoding,
    collate: d.datcollate,
    ctype: d.datctype,
    provider: d.datlocprovider,
    icuLocale: d.daticulocale,
    acl: acl ? [...acl] : null,
    settings: [...settings],
  };
}

export const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Settings whose stored value is already a list of quoted items (`"$user", public`). */
const LIST_SETTINGS = new Set([
  "search_path",
  "temp_tablespaces",
  "session_preload_libraries",
  "local_preload_libraries",
]);

/**
 * What `pg_dump` (without --create) leaves out and a swapped-in database must get
 * from the one it replaces: its grants (CONNECT, TEMP, CREATE) and its
 * `ALTER DATABASE / ALTER ROLE ... IN DATABASE ... SET` settings.
 */
export async function copyDatabaseProperties(
  admin: Sql,
  facts: DatabaseFacts,
  fresh: string,
  noOwner: boolean,
): Promise<void> {
  const db = quoteIdent(fresh);
  if (facts.acl && !noOwner) {
    await admin.unsafe(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const a of facts.acl) {
      if (a.grantee === facts.owner) continue;
      await admin.unsafe(
        `GRANT ${a.privilege} ON DATABASE ${db} TO ${
          a.grantee === null ? "PUBLIC" : quoteIdent(a.grantee)
        }${a.grantable ? " WITH GRANT OPTION" : ""}`,
      );
    }
  }
  for (const s of facts.settings) {
    if (s.role !== null && noOwner) continue;
    const prefix = s.role === null
      ? `ALTER DATABASE ${db}`
      : `ALTER ROLE ${quoteIdent(s.role)} IN DATABASE ${db}`;
    for (const item of s.config) {
      const at = item.indexOf("=");
      const name = item.slice(0, at), value = item.slice(at + 1);
      if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) continue;
      await admin.unsafe(
        `${prefix} SET ${name} TO ${LIST_SETTINGS.has(name) ? value : literal(value)}`,
      );
    }
  }
}

/**
 * Puts `fresh` in the place of `target`, in one transaction: the target's
 * sessions are ended, it is renamed to `<target>_pre_restore_<stamp>`, and
 * `fresh` takes its name; both renames commit together or not at all, so a
 * process killed half way leaves the target as it was (nothing like a database
 * left refusing connections). ALTER DATABASE RENAME refuses while another
 * session is connected (55006, after waiting up to 5 s for them to go), so
 * sessions that arrive meanwhile are ended again and the rename retried under a
 * savepoint. Returns the name the old database now has.
 */
export async function swap(admin: Sql, target: string, fresh: string): Promise<string> {
  let aside = sideName(target, `_pre_restore_${stamp(new Date())}`);
  for (let n = 2; (await admin`SELECT 1 FROM pg_database WHERE datname = ${aside}`).length; n++) {
    aside = sideName(target, `_pre_restore_${stamp(new Date())}_${n}`);
  }
  const t = quoteIdent(target), a = quoteIdent(aside), f = quoteIdent(fresh);
  await admin.unsafe("BEGIN");
  try {
    for (let i = 0;; i++) {
      // pg_stat_activity is read once per transaction unless its snapshot is cleared.
      await admin`SELECT pg_stat_clear_snapshot()`;
      await admin`
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = ${target} AND pid <> pg_backend_pid()`;
      await admin.unsafe("SAVEPOINT cairn_swap");
      try {
        await admin.unsafe(`ALTER DATABASE ${t} RENAME TO ${a}`);
        break;
      } catch (error) {
        await admin.unsafe("ROLLBACK TO SAVEPOINT cairn_swap");
        if ((error as { code?: string }).code !== "55006" || i >= 5) throw error;
      }
    }
    // The fresh database's restore mark (leftovers.ts) goes in the same commit: it is no
    // longer a leftover once it has the target's name.
    await admin.unsafe(`COMMENT ON DATABASE ${f} IS NULL`);
    await admin.unsafe(`ALTER DATABASE ${f} RENAME TO ${t}`);
    await admin.unsafe("COMMIT");
  } catch (error) {
    await admin.unsafe("ROLLBACK").catch(() => {});
    throw error;
  }
  return aside;
}

/** Whether a database holds anything a restore would clobber. */
export async function databaseHasObjects(target: PgTarget, name: string): Promise<boolean> {
  const sql = await open(target, name);
  try {
    const [{ n }] = await sql.unsafe<Array<{ n: string }>>(`
      SELECT count(*)::text AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg\\_toast%'`);
    return Number(n) > 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

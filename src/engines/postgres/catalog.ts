import { constants, deflateRawSync } from "node:zlib";
import type { Sql } from "./conn.ts";

/** The user tables whose rows a dump carries: no system schemas, nothing owned by an extension. */
const TABLES = `
  SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (
      SELECT 1 FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export interface Counts {
  tables: Record<string, number>;
  large_objects: number;
}

/** Exact counts, run inside whatever transaction (snapshot) `sql` is in. */
export async function countRows(sql: Sql, signal?: AbortSignal): Promise<Counts> {
  const tables: Record<string, number> = {};
  for (
    const { schema, name } of await sql.unsafe<Array<{ schema: string; name: string }>>(TABLES)
  ) {
    signal?.throwIfAborted();
    const [{ n }] = await sql.unsafe<Array<{ n: string }>>(
      `SELECT count(*)::text AS n FROM ${quoteIdent(schema)}.${quoteIdent(name)}`,
    );
    tables[`${schema}.${name}`] = Number(n);
  }
  const [{ n }] = await sql.unsafe<Array<{ n: string }>>(
    "SELECT count(*)::text AS n FROM pg_largeobject_metadata",
  );
  return { tables, large_objects: Number(n) };
}

/** The largest user tables by size on disk, TOAST included. */
const LARGEST_TABLES = `
  SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid)::float8 AS bytes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  ORDER BY 3 DESC LIMIT 3`;

/** Rows read per sampled table: enough text for zlib's ratio to settle, in milliseconds. */
const SAMPLE_ROWS = 2000;

/**
 * How many times the data is expected to shrink under zlib (level 6): a few pages
 * of each of the three largest tables (TABLESAMPLE SYSTEM reads only the pages it
 * picks), their rows as text, each table's ratio weighted by its size. Null when
 * there is nothing to sample, or the sample fails. `sql` must be in a transaction.
 */
export async function sampleCompressionRatio(sql: Sql): Promise<number | null> {
  // Inside the dump's snapshot transaction: a failing sample (a table this role
  // cannot read, say) must not abort it. pg_dump then reports such a table itself.
  await sql.unsafe("SAVEPOINT cairn_sample");
  try {
    const ratio = await sampleTables(sql);
    await sql.unsafe("RELEASE SAVEPOINT cairn_sample");
    return ratio;
  } catch {
    await sql.unsafe("ROLLBACK TO SAVEPOINT cairn_sample");
    return null;
  }
}

async function sampleTables(sql: Sql): Promise<number | null> {
  let bytes = 0;
  let packed = 0;
  const tables = await sql.unsafe<Array<{ schema: string; name: string; bytes: number }>>(
    LARGEST_TABLES,
  );
  for (const table of tables) {
    if (!(table.bytes > 0)) continue;
    // About 64 pages' worth of the table, at least 0.001 percent of it.
    const percent = Math.min(100, Math.max(0.001, (64 * 8192 * 100) / table.bytes));
    const rows = await sql.unsafe<Array<{ row: string }>>(
      `SELECT t::text AS row FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)} t
       TABLESAMPLE SYSTEM (${percent.toFixed(6)}) LIMIT ${SAMPLE_ROWS}`,
    );
    if (rows.length === 0) continue;
    const text = new TextEncoder().encode(rows.map((r) => r.row).join("\n"));
    const deflated = deflateRawSync(text, { level: 6, finishFlush: constants.Z_FINISH });
    bytes += table.bytes;
    packed += table.bytes * (deflated.length / text.length);
  }
  return bytes > 0 && packed > 0 ? bytes / packed : null;
}

export function compareCounts(expected: Counts, actual: Counts): string[] {
  const problems: string[] = [];
  for (const name of new Set([...Object.keys(expected.tables), ...Object.keys(actual.tables)])) {
    const want = expected.tables[name], got = actual.tables[name];
    if (want !== got) {
      problems.push(
        `${name}: ${got ?? "missing"} rows restored, ${want ?? "absent"} in the manifest`,
      );
    }
  }
  if ((expected.large_objects ?? 0) !== actual.large_objects) {
    problems.push(
      `large objects: ${actual.large_objects} restored, ${expected.large_objects} in the manifest`,
    );
  }
  return problems;
}

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

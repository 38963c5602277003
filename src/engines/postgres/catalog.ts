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

/** One table's exact row count; schema and name kept apart, so no two tables can share a key. */
export interface TableRows {
  schema: string;
  table: string;
  rows: number;
}

export interface Counts {
  tables: TableRows[];
  large_objects: number;
}

/** Tables counted per statement: few round trips, and few locks held at once. */
const COUNT_BATCH = 100;

/**
 * Exact counts, in batches of COUNT_BATCH tables, each batch its own transaction,
 * so the locks a count takes (the table and, for planning, its indexes) are
 * released batch by batch: holding one per table at once exhausts the shared lock
 * table of a default server (64 x max_connections) for a few thousand tables.
 * With `snapshot` (from pg_export_snapshot in a transaction still open elsewhere),
 * every batch reads that snapshot, so the counts are those of one instant; `sql`
 * must then be a connection of its own (max 1), as engine.ts opens it.
 */
export async function countRows(
  sql: Sql,
  options: { signal?: AbortSignal; snapshot?: string } = {},
): Promise<Counts> {
  const { signal, snapshot } = options;
  // Plain statements, not sql.begin(): postgres.js's begin() writes a ROLLBACK to a
  // socket that may already be gone when the server ends the session.
  const inSnapshot = async <T>(fn: (tx: Sql) => Promise<T>): Promise<T> => {
    if (!snapshot) return await fn(sql);
    await sql.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      await sql.unsafe(`SET TRANSACTION SNAPSHOT '${snapshot.replaceAll("'", "''")}'`);
      await sql.unsafe("SET LOCAL max_parallel_workers_per_gather = 0");
      await sql.unsafe("SET LOCAL statement_timeout = 0");
      const value = await fn(sql);
      await sql.unsafe("COMMIT");
      return value;
    } catch (error) {
      await sql.unsafe("ROLLBACK").catch(() => {});
      throw error;
    }
  };
  const list = await inSnapshot((tx) => tx.unsafe<Array<{ schema: string; name: string }>>(TABLES));
  const tables: TableRows[] = [];
  for (let at = 0; at < list.length; at += COUNT_BATCH) {
    signal?.throwIfAborted();
    const batch = list.slice(at, at + COUNT_BATCH);
    const query = batch.map(({ schema, name }, i) =>
      `SELECT ${i} AS i, count(*)::text AS n FROM ${quoteIdent(schema)}.${quoteIdent(name)}`
    ).join(" UNION ALL ");
    const rows = await inSnapshot((tx) => tx.unsafe<Array<{ i: number; n: string }>>(query));
    const byIndex = new Map(rows.map((r) => [Number(r.i), Number(r.n)]));
    batch.forEach(({ schema, name }, i) =>
      tables.push({ schema, table: name, rows: byIndex.get(i) ?? 0 })
    );
  }
  const [{ n }] = await inSnapshot((tx) =>
    tx.unsafe<Array<{ n: string }>>("SELECT count(*)::text AS n FROM pg_largeobject_metadata")
  );
  return { tables, large_objects: Number(n) };
}

/**
 * The per-table counts a manifest records. Manifests from before cairn 0.x kept
 * them as `{"schema.table": rows}`, a name that can be ambiguous (`a.b` in public
 * versus `b` in schema `a`); those come back as `legacy`, compared by that string.
 */
export type ManifestTables =
  | { format: "split"; tables: TableRows[] }
  | { format: "legacy"; tables: Record<string, number> };

export function manifestTables(facts: Record<string, unknown>): ManifestTables {
  const value = facts.tables;
  if (Array.isArray(value)) {
    return {
      format: "split",
      tables: value.map((t) => ({
        schema: String(t.schema),
        table: String(t.table),
        rows: Number(t.rows),
      })),
    };
  }
  const legacy: Record<string, number> = {};
  for (const [name, rows] of Object.entries((value ?? {}) as Record<string, unknown>)) {
    legacy[name] = Number(rows);
  }
  return { format: "legacy", tables: legacy };
}

/** Sum of the rows a manifest records. */
export function manifestRowTotal(tables: ManifestTables): number {
  return tables.format === "split"
    ? tables.tables.reduce((a, t) => a + t.rows, 0)
    : Object.values(tables.tables).reduce((a, b) => a + b, 0);
}

/** How one table compares; `schema` is null for a legacy manifest's name that matched nothing. */
export interface TableComparison {
  schema: string | null;
  table: string;
  manifest: number | null;
  restored: number | null;
}

/** A stable key for a (schema, table) pair: JSON of the pair, never confusable. */
const pairKey = (schema: string, table: string) => JSON.stringify([schema, table]);

/** `schema.table` for messages, each part quoted when it is not a plain lower-case name. */
export function displayName(schema: string, table: string): string {
  const part = (s: string) => /^[a-z_][a-z0-9_$]*$/.test(s) ? s : quoteIdent(s);
  return `${part(schema)}.${part(table)}`;
}

/**
 * Compares what a manifest records with what was counted, per (schema, table)
 * (per `schema.table` string for a legacy manifest). Returns one row per table
 * seen on either side, sorted, and a sentence per difference.
 */
export function compareCounts(
  expected: { tables: ManifestTables; large_objects: number },
  actual: Counts,
): { comparison: TableComparison[]; problems: string[] } {
  const comparison: TableComparison[] = [];
  if (expected.tables.format === "split") {
    const want = new Map(expected.tables.tables.map((t) => [pairKey(t.schema, t.table), t]));
    const got = new Map(actual.tables.map((t) => [pairKey(t.schema, t.table), t]));
    for (const key of new Set([...want.keys(), ...got.keys()])) {
      const w = want.get(key), g = got.get(key);
      const [schema, table] = JSON.parse(key) as [string, string];
      comparison.push({ schema, table, manifest: w?.rows ?? null, restored: g?.rows ?? null });
    }
  } else {
    const want = expected.tables.tables;
    const got = new Map<string, { schema: string; table: string; rows: number }>();
    const seen = new Set<string>();
    for (const t of actual.tables) {
      const name = `${t.schema}.${t.table}`;
      if (seen.has(name)) {
        // Two tables the old format cannot tell apart: both are reported as they are.
        comparison.push({ schema: t.schema, table: t.table, manifest: null, restored: t.rows });
        continue;
      }
      seen.add(name);
      got.set(name, t);
    }
    for (const name of new Set([...Object.keys(want), ...got.keys()])) {
      const g = got.get(name);
      comparison.push({
        schema: g?.schema ?? null,
        table: g?.table ?? name,
        manifest: want[name] ?? null,
        restored: g?.rows ?? null,
      });
    }
  }
  comparison.sort((a, b) =>
    (a.schema ?? "").localeCompare(b.schema ?? "") || a.table.localeCompare(b.table)
  );
  const problems: string[] = [];
  for (const c of comparison) {
    if (c.manifest !== c.restored) {
      const name = c.schema === null ? c.table : displayName(c.schema, c.table);
      problems.push(
        `${name}: ${c.restored ?? "missing"} rows restored, ${
          c.manifest ?? "absent"
        } in the manifest`,
      );
    }
  }
  if ((expected.large_objects ?? 0) !== actual.large_objects) {
    problems.push(
      `large objects: ${actual.large_objects} restored, ${expected.large_objects} in the manifest`,
    );
  }
  return { comparison, problems };
}

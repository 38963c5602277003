/**
 * The database a Redis restore target names explicitly (`redis://host:port/3`), or
 * null when its URL has no `/db` (the snapshot's own databases are used). An RDB
 * holds every database of the instance (SYNC copies the whole instance), so a
 * target database can take a snapshot of one database only.
 */
export function explicitTargetDb(url: string): number | null {
  try {
    const path = new URL(url).pathname.replace(/^\//, "");
    return /^\d+$/.test(path) ? Number(path) : null;
  } catch {
    return null;
  }
}

/** The databases of a manifest's `keys_per_db` ({"db0": 12, ...}) that hold keys. */
export function snapshotDbs(keysPerDb: unknown): number[] {
  if (!keysPerDb || typeof keysPerDb !== "object") return [];
  return Object.entries(keysPerDb as Record<string, unknown>)
    .filter(([name, n]) => /^db\d+$/.test(name) && typeof n === "number" && n > 0)
    .map(([name]) => Number(name.slice(2)))
    .sort((a, b) => a - b);
}

/** Whether Redis INFO (keyspace section) shows keys: in `db` alone, or in any database. */
export function keyspaceOccupied(info: Record<string, string>, db: number | null): boolean {
  return Object.keys(info).some((k) =>
    /^db\d+$/.test(k) && (db === null || k === `db${db}`) && !/keys=0,/.test(info[k])
  );
}

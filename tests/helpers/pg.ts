import postgres from "postgres";

export const PG_HOST = "127.0.0.1";
export const PG_PORT = 5432;
export const PG_ADMIN_URL = `postgres://postgres@${PG_HOST}:${PG_PORT}/postgres`;

export type Sql = ReturnType<typeof postgres>;

export function pg(database = "postgres", user = "postgres"): Sql {
  return postgres({
    host: PG_HOST,
    port: PG_PORT,
    user,
    database,
    max: 4,
    onnotice: () => {},
    prepare: false,
  });
}

/** Fails with how to start PostgreSQL when it is not there; never skips silently. */
export async function requirePostgres(): Promise<void> {
  const sql = pg();
  try {
    await sql`SELECT 1`;
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${PG_HOST}:${PG_PORT} (${(error as Error).message}). ` +
        "Start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start",
    );
  } finally {
    await sql.end();
  }
}

/** A fresh database for one test, dropped afterwards. */
export async function withDatabase<T>(fn: (name: string, sql: Sql) => Promise<T>): Promise<T> {
  await requirePostgres();
  const name = `cairn_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = pg();
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const sql = pg(name);
  try {
    return await fn(name, sql);
  } finally {
    await sql.end({ timeout: 5 });
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    await admin.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  const admin = pg();
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}

export async function databaseExists(name: string): Promise<boolean> {
  const admin = pg();
  try {
    return (await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`).length > 0;
  } finally {
    await admin.end();
  }
}

/**
 * A role that must log in with a password. The shared cluster trusts 127.0.0.1, so
 * a pg_hba line for this one role (added once, idempotently) makes it check passwords.
 */
export async function passwordRole(): Promise<{ user: string; password: string }> {
  const user = "cairn_pw_user", password = "right-pw-8472";
  const admin = pg();
  try {
    await admin.unsafe(
      `DO $$ BEGIN CREATE ROLE ${user} LOGIN PASSWORD '${password}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.unsafe(`ALTER ROLE ${user} PASSWORD '${password}'`);
    const [{ hba_file }] = await admin`SELECT current_setting('hba_file') AS hba_file`;
    const line = `host all ${user} 127.0.0.1/32 scram-sha-256`;
    const text = await Deno.readTextFile(hba_file);
    if (!text.includes(line)) {
      await Deno.writeTextFile(hba_file, `${line}\n${text}`);
      await admin`SELECT pg_reload_conf()`;
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    await admin.end();
  }
  return { user, password };
}

/** A digest of a table's full contents, independent of physical order. */
export async function tableDigest(sql: Sql, qualified: string): Promise<string> {
  const [{ d }] = await sql.unsafe(
    `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS d FROM ${qualified} t`,
  );
  return d;
}

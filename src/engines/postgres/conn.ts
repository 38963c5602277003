import postgres from "postgres";
import { CairnError } from "../../errors.ts";
import { redactUrl } from "../../redact.ts";
import type { Scratch } from "../../io/scratch.ts";
import { baseChildEnv, withSecretFile } from "../process.ts";

export interface PgTarget {
  url: string;
  host: string;
  port: number;
  user: string;
  password: string | null;
  database: string;
  sslmode: string | null;
}

export function parsePgUrl(url: string): PgTarget {
  const u = new URL(url);
  return {
    url,
    host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, "")) || "localhost",
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username) || "postgres",
    password: u.password ? decodeURIComponent(u.password) : null,
    database: decodeURIComponent(u.pathname.replace(/^\//, "")) || decodeURIComponent(u.username) ||
      "postgres",
    sslmode: u.searchParams.get("sslmode"),
  };
}

/** Database names cairn creates or restores into: plain identifiers, so no quoting games. */
export const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

export function assertDatabaseName(name: string, what: string): void {
  if (!DATABASE_NAME.test(name)) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid ${what} ${
        JSON.stringify(name)
      }: use a database name of letters, digits, _ $ and - (at most 63)`,
    );
  }
}

/** Where a restore writes: a server, a database on it, and how to name it in output. */
export interface RestoreDestination {
  server: PgTarget;
  database: string;
  /** The database name, or the URL with its password as *** (for results and messages). */
  display: string;
}

/**
 * A restore target: none (the client's own database), a database name on the
 * client's server, or a `postgres://user:pass@host:port/db` URL naming another
 * server (which must name its database). Throws VALIDATION_FAILED naming the
 * problem; the message never holds the password.
 */
export function restoreDestination(clientUrl: string, target: string | null): RestoreDestination {
  const client = parsePgUrl(clientUrl);
  if (target === null) {
    return { server: client, database: client.database, display: client.database };
  }
  if (/^postgres(ql)?:\/\//i.test(target)) {
    let server: PgTarget;
    try {
      server = parsePgUrl(target);
    } catch {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Invalid restore target URL ${
          redactUrl(target)
        }: use postgres://user:password@host:port/database`,
      );
    }
    const display = redactUrl(target);
    if (!new URL(target).pathname.replace(/^\//, "")) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Restore target URL ${display} names no database: add /<database> to it`,
      );
    }
    assertDatabaseName(server.database, "restore target database");
    return { server, database: server.database, display };
  }
  if (target.includes("://")) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid restore target ${redactUrl(target)}: a database name, or a postgres:// URL`,
    );
  }
  assertDatabaseName(target, "restore target");
  return { server: client, database: target, display: target };
}

/** A connection to `database` (default: the client's) for cairn's own queries. */
export function connect(target: PgTarget, database = target.database) {
  return postgres({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password ?? undefined,
    database,
    ssl: target.sslmode && target.sslmode !== "disable"
      ? (target.sslmode === "require" ? "require" : "prefer")
      : false,
    max: 1,
    connect_timeout: 10,
    idle_timeout: 0,
    prepare: false,
    onnotice: () => {},
    connection: { application_name: "cairn" },
  });
}

export type Sql = ReturnType<typeof connect>;

/** Distinct, actionable errors for the ways a connection fails. */
export function pgError(error: unknown, target: PgTarget, database = target.database): Error {
  if (error instanceof CairnError) return error;
  const e = error as Error & { code?: string; errno?: string };
  const where = `PostgreSQL at ${target.host}:${target.port}`;
  switch (e?.code) {
    case "ECONNREFUSED":
      return new CairnError(
        "SOURCE_UNAVAILABLE",
        `${where} refused the connection: is the server running and listening there?`,
        { cause: error },
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new CairnError("SOURCE_UNAVAILABLE", `Cannot resolve the host of ${where}`, {
        cause: error,
      });
    case "CONNECT_TIMEOUT":
    case "ETIMEDOUT":
      return new CairnError("SOURCE_UNAVAILABLE", `${where} did not answer within 10 s`, {
        cause: error,
      });
    case "28P01":
    case "28000":
      return new CairnError(
        "SOURCE_REFUSED",
        `${where} rejected the credentials of user ${target.user} (${e.message}): check the password in the client url (or the restore target URL)`,
        { cause: error },
      );
    case "3D000":
      return new CairnError("SOURCE_REFUSED", `Database ${database} does not exist on ${where}`, {
        cause: error,
      });
    case "42501":
      return new CairnError(
        "SOURCE_REFUSED",
        `User ${target.user} lacks a privilege on ${where}: ${e.message}`,
        { cause: error },
      );
  }
  return new CairnError("SOURCE_UNAVAILABLE", `${where}: ${e?.message ?? String(error)}`, {
    cause: error,
  });
}

/**
 * The environment for pg_dump / pg_restore. The password goes into a private
 * passfile (mode 0600 in a 0700 directory), never into argv or PGPASSWORD.
 */
export function toolEnv(
  target: PgTarget,
  scratch: Scratch,
): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const env: Record<string, string> = {
    ...baseChildEnv(),
    HOME: Deno.env.get("HOME") ?? "/",
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGDATABASE: target.database,
    PGAPPNAME: "cairn",
    PGCONNECT_TIMEOUT: "10",
  };
  if (target.sslmode) env.PGSSLMODE = target.sslmode;
  for (const name of ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"]) {
    const v = Deno.env.get(name);
    if (v) env[name] = v;
  }
  if (target.password === null) {
    // No password in the url: let libpq find one the usual ways.
    for (const name of ["PGPASSWORD", "PGPASSFILE"]) {
      const v = Deno.env.get(name);
      if (v) env[name] = v;
    }
    return Promise.resolve({ env, cleanup: () => Promise.resolve() });
  }
  // The passfile is written by spawnTool for each child and removed when it exits.
  const escaped = target.password.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
  return Promise.resolve({
    env: withSecretFile(env, { variable: "PGPASSFILE", content: `*:*:*:*:${escaped}\n`, scratch }),
    cleanup: () => Promise.resolve(),
  });
}

/** A libpq conninfo naming one database, for pg_restore --dbname. */
export function conninfoFor(database: string): string {
  return `dbname='${database.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

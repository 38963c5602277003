import assert from "node:assert/strict";
import { readManifest, writeManifest } from "../../src/repository/manifest.ts";
import {
  databaseExists,
  dropDatabase,
  pg,
  PG_HOST,
  PG_PORT,
  type Sql,
  tableDigest,
  withDatabase,
} from "../helpers/pg.ts";
import postgres from "postgres";
import { sealTarget } from "../../src/runtime/target_secrets.ts";
import { startSecondPostgres } from "../helpers/pg_second.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

const url = (db: string, user = "postgres", password = "") =>
  `postgres://${user}${password ? `:${password}` : ""}@${PG_HOST}:${PG_PORT}/${db}`;

/** Databases whose name starts with `prefix`: what a restore left beside its target. */
async function databasesLike(prefix: string): Promise<string[]> {
  const admin = pg();
  try {
    return (await admin`SELECT datname FROM pg_database WHERE starts_with(datname, ${prefix}) ORDER BY 1`)
      .map((r) => r.datname as string);
  } finally {
    await admin.end();
  }
}

async function withServices(
  db: string,
  fn: (services: Awaited<ReturnType<typeof testServices>>) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      app: { kind: "postgres", url: url(db), ...extra },
    });
    try {
      await fn(services);
    } finally {
      await services.store.close();
    }
  });
}

async function backup(services: Awaited<ReturnType<typeof testServices>>): Promise<string> {
  const b = await run(services, { kind: "backup", client_name: "app" });
  assert.equal(b.status, "completed", b.error ?? "");
  return String(b.result!.key);
}

/** Unique role names for one test, dropped (with what they own) afterwards. */
async function withRoles<T>(
  names: string[],
  fn: (roles: string[]) => Promise<T>,
): Promise<T> {
  const tag = crypto.randomUUID().slice(0, 6);
  const roles = names.map((n) => `cairn_${n}_${tag}`);
  const admin = pg();
  try {
    for (const r of roles) await admin.unsafe(`CREATE ROLE "${r}"`);
    return await fn(roles);
  } finally {
    for (const r of roles) {
      for (const { datname } of await admin`SELECT datname FROM pg_database WHERE datallowconn`) {
        if (!String(datname).startsWith("cairn_t_")) continue;
        const db = pg(datname);
        await db.unsafe(`DROP OWNED BY "${r}" CASCADE`).catch(() => {});
        await db.end();
      }
      await admin.unsafe(`DROP ROLE IF EXISTS "${r}"`).catch(() => {});
    }
    await admin.end();
  }
}

Deno.test({
  name:
    "postgres restore: a view and a citext table created after the backup do not block replacing the live database; sessions on it are ended",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`CREATE TABLE t (id int PRIMARY KEY, v text);
        INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;`);
      await withServices(db, async (services) => {
        const key = await backup(services);
        await sql.unsafe(`
          DELETE FROM t WHERE id > 10;
          CREATE VIEW later_view AS SELECT * FROM t;
          CREATE EXTENSION IF NOT EXISTS citext;
          CREATE TABLE later_citext (name citext);
          INSERT INTO later_citext VALUES ('Mixed');`);
        // An application session that stays connected during the restore.
        const app = pg(db);
        await app`SELECT 1`;
        const r = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        assert.equal(r.result!.replaced, true);
        assert.equal(r.result!.kept_old, null, "the replaced database is dropped by default");
        await app.end({ timeout: 1 }).catch(() => {});
        const fresh = pg(db);
        try {
          const [{ n }] = await fresh`SELECT count(*)::int AS n FROM t`;
          assert.equal(n, 100);
          const left = await fresh`
            SELECT relname FROM pg_class WHERE relname IN ('later_view', 'later_citext')`;
          assert.deepEqual([...left], [], "the objects made after the backup are gone");
        } finally {
          await fresh.end();
        }
        assert.deepEqual(await databasesLike(`${db}_`), [], "nothing left beside the target");
      });
    });
  },
});

Deno.test({
  name:
    "postgres restore: keep_old keeps the replaced database under a dated name; a failed restore leaves the live one untouched",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 5);`);
      await withServices(db, async (services) => {
        const key = await backup(services);
        await sql.unsafe(`INSERT INTO t VALUES (6)`);
        const kept = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true, keep_old: true },
        });
        assert.equal(kept.status, "completed", kept.error ?? "");
        const old = String(kept.result!.kept_old);
        assert.match(old, new RegExp(`^${db}_pre_restore_\\d{8}T\\d{6}$`));
        const oldDb = pg(old);
        try {
          const [{ n }] = await oldDb`SELECT count(*)::int AS n FROM t`;
          assert.equal(n, 6, "the kept database is the one that was live");
        } finally {
          await oldDb.end();
          await dropDatabase(old);
        }
        // A manifest whose counts the archive cannot meet: the fresh copy is refused.
        const manifest = await readManifest(services.repository, key);
        await writeManifest(services.repository, {
          ...manifest,
          facts: { ...manifest.facts, tables: [{ schema: "public", table: "t", rows: 999 }] },
        });
        const live = pg(db);
        await live`INSERT INTO t VALUES (7)`;
        const bad = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        });
        assert.equal(bad.status, "failed");
        assert.match(
          bad.error!,
          new RegExp(`was left as it was: public.t: 5 rows restored, 999 in the manifest`),
        );
        const [{ n }] = await live`SELECT count(*)::int AS n FROM t`;
        assert.equal(n, 6, "the live database is untouched");
        await live.end();
        assert.deepEqual(await databasesLike(`${db}_`), [], "the fresh database was dropped");
      });
    });
  },
});

Deno.test({
  name:
    "postgres: 3,000 tables back up, verify and restore over the live database on a default server (max_locks_per_transaction 64)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const admin = pg();
    const [{ max_locks_per_transaction: locks }] = await admin`SHOW max_locks_per_transaction`;
    await admin.end();
    assert.equal(locks, "64", "this test is about a default server");
    await withDatabase(async (db, sql) => {
      // One transaction per 500 tables: a single one would itself exhaust the lock table.
      for (let from = 1; from <= 3000; from += 500) {
        await sql.unsafe(`DO $$ BEGIN
          FOR i IN ${from}..${from + 499} LOOP
            EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
            EXECUTE format('INSERT INTO t%s VALUES (1, %L), (2, NULL)', i, 'row' || i);
          END LOOP; END $$;`);
      }
      await withServices(db, async (services) => {
        let at = Date.now();
        const key = await backup(services);
        const backupMs = Date.now() - at;
        at = Date.now();
        const v = await run(services, { kind: "verify", client_name: "app", key });
        assert.equal(v.status, "completed", v.error ?? "");
        assert.equal((v.result!.checks as { tables_checked: number }).tables_checked, 3000);
        const verifyMs = Date.now() - at;
        at = Date.now();
        const r = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        assert.equal(r.result!.tables, 3000);
        assert.equal(r.result!.rows, 6000);
        console.log(
          `3,000 tables: backup ${backupMs} ms, verify ${verifyMs} ms, restore ${
            Date.now() - at
          } ms`,
        );
      });
    });
  },
});

Deno.test({
  name:
    "postgres restore: owners and grants come back over the live database; a missing role is named before anything is written; no_owner restores without them",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRoles(["owner", "reader", "gone"], async ([owner, reader, gone]) => {
      await withDatabase(async (db, sql) => {
        await sql.unsafe(`
          CREATE TABLE owned (id int); INSERT INTO owned VALUES (1);
          ALTER TABLE owned OWNER TO "${owner}";
          GRANT SELECT ON owned TO "${reader}";
          REVOKE CONNECT ON DATABASE "${db}" FROM PUBLIC;
          GRANT CONNECT ON DATABASE "${db}" TO "${reader}";
          ALTER DATABASE "${db}" SET work_mem = '5MB';
          ALTER DATABASE "${db}" SET search_path = "$user", public, "Other Schema";
          ALTER ROLE "${reader}" IN DATABASE "${db}" SET statement_timeout = '7s';`);
        await withServices(db, async (services) => {
          const key = await backup(services);
          const r = await run(services, {
            kind: "restore",
            client_name: "app",
            key,
            params: { replace: true },
          });
          assert.equal(r.status, "completed", r.error ?? "");
          const check = pg(db);
          try {
            const [row] = await check`
              SELECT pg_get_userbyid(relowner) AS owner,
                has_table_privilege(${reader}, 'owned', 'SELECT') AS reads
              FROM pg_class WHERE relname = 'owned'`;
            assert.deepEqual({ ...row }, { owner, reads: true });
            const [{ connect, pub }] = await check`
              SELECT has_database_privilege(${reader}, current_database(), 'CONNECT') AS connect,
                has_database_privilege('public', current_database(), 'CONNECT') AS pub`;
            assert.deepEqual([connect, pub], [true, false], "database grants carried over");
            const settings = await check`
              SELECT coalesce(pg_get_userbyid(nullif(setrole, 0)), '') AS role, setconfig
              FROM pg_db_role_setting WHERE setdatabase =
                (SELECT oid FROM pg_database WHERE datname = current_database())
              ORDER BY 1`;
            assert.deepEqual(settings.map((r) => [r.role, r.setconfig]), [
              ["", ["work_mem=5MB", 'search_path="$user", public, "Other Schema"']],
              [reader, ["statement_timeout=7s"]],
            ], "database settings carried over");
          } finally {
            await check.end();
          }

          // A backup whose objects name a role the server no longer has.
          const other = pg(db);
          await other.unsafe(`GRANT SELECT ON owned TO "${gone}"`);
          await other.end();
          const key2 = await backup(services);
          const admin = pg();
          const target = pg(db);
          await target.unsafe(`REVOKE ALL ON owned FROM "${gone}"; INSERT INTO owned VALUES (2);`);
          await target.end();
          await admin.unsafe(`DROP ROLE "${gone}"`);
          await admin.end();
          const refused = await run(services, {
            kind: "restore",
            client_name: "app",
            key: key2,
            params: { replace: true },
          });
          assert.equal(refused.status, "failed");
          assert.equal(
            refused.error,
            `PostgreSQL at ${PG_HOST}:${PG_PORT} has no role ${gone}, which owns or is granted objects in ${key2}: create it first (CREATE ROLE), or restore without owners and grants ("no_owner": true, --no-owner)`,
          );
          assert.deepEqual(await databasesLike(`${db}_`), [], "no fresh database was made");
          const after = pg(db);
          const [{ n }] = await after`SELECT count(*)::int AS n FROM owned`;
          await after.end();
          assert.equal(n, 2, "nothing written");

          const bare = await run(services, {
            kind: "restore",
            client_name: "app",
            key: key2,
            params: { replace: true, no_owner: true },
          });
          assert.equal(bare.status, "completed", bare.error ?? "");
          const last = pg(db);
          const [{ o }] =
            await last`SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE relname = 'owned'`;
          await last.end();
          assert.equal(o, "postgres", "owned by the restoring role");
        });
        // The role is created again so that withRoles' cleanup finds it.
        const admin = pg();
        await admin.unsafe(`CREATE ROLE "${gone}"`);
        await admin.end();
      });
    });
  },
});

async function tableFacts(sql: Sql, table: string) {
  const indexes = await sql`
    SELECT indexname FROM pg_indexes WHERE schemaname || '.' || tablename = ${table} ORDER BY 1`;
  const triggers = await sql`
    SELECT tgname FROM pg_trigger WHERE tgrelid = ${table}::regclass AND NOT tgisinternal`;
  return {
    indexes: indexes.map((r) => r.indexname),
    triggers: triggers.map((r) => r.tgname),
  };
}

Deno.test({
  name:
    "postgres restore of some tables: they are replaced with their indexes, constraints and triggers, the rest is left alone; unknown names fail before writing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`
        CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE);
        CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users(id));
        CREATE TABLE "a.b" (x int);
        CREATE SCHEMA a; CREATE TABLE a.b (y int);
        CREATE TABLE other (z int);
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
        INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 50) g;
        INSERT INTO orders SELECT g, 1 + g % 50 FROM generate_series(1, 30) g;
        INSERT INTO "a.b" SELECT generate_series(1, 7);
        INSERT INTO a.b SELECT generate_series(1, 3);
        INSERT INTO other VALUES (1);`);
      await withServices(db, async (services) => {
        const key = await backup(services);
        const before = await tableFacts(sql, "public.users");
        await sql.unsafe(`
          DELETE FROM orders; DELETE FROM users WHERE id > 5;
          DROP TRIGGER users_touch ON users; DROP INDEX users_email_key CASCADE;
          ALTER TABLE users DROP CONSTRAINT users_email_key;
          DELETE FROM "a.b"; DELETE FROM a.b; INSERT INTO other VALUES (2);`).catch(async () => {
          // users_email_key is a constraint's index: dropped with the constraint.
          await sql.unsafe(`
            DELETE FROM orders; DELETE FROM users WHERE id > 5;
            DROP TRIGGER users_touch ON users;
            ALTER TABLE users DROP CONSTRAINT users_email_key;
            DELETE FROM "a.b"; DELETE FROM a.b; INSERT INTO other VALUES (2);`);
        });
        const unknown = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true, tables: ["public.users", "public.nope", `"a"."c"`] },
        });
        assert.equal(unknown.status, "failed");
        assert.equal(
          unknown.error,
          `Backup ${key} has no table public.nope, a.c (it holds 5 tables; names are schema.table, exact case, double quotes around parts with dots, quotes or spaces)`,
        );
        const refused = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { tables: ["public.users"] },
        });
        assert.equal(refused.status, "failed");
        assert.match(refused.error!, /already has public\.users: pass --yes .* "replace": true/);

        const r = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true, tables: ["public.users", "public.orders", `public."a.b"`] },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        assert.deepEqual(r.result!.restored_tables, [
          { schema: "public", table: "users", manifest: 50, restored: 50 },
          { schema: "public", table: "orders", manifest: 30, restored: 30 },
          { schema: "public", table: "a.b", manifest: 7, restored: 7 },
        ]);
        const count = async (t: string) =>
          (await sql.unsafe(`SELECT count(*)::int AS n FROM ${t}`))[0].n;
        assert.equal(await count("users"), 50);
        assert.equal(await count("orders"), 30);
        assert.equal(await count(`"a.b"`), 7);
        assert.equal(await count("a.b"), 0, "a.b in schema a is another table: left alone");
        assert.equal(await count("other"), 2, "tables not named are left alone");
        assert.deepEqual(await tableFacts(sql, "public.users"), before);
        const [{ next }] = await sql`SELECT nextval('users_id_seq')::int AS next`;
        assert.equal(next, 51, "the owned sequence came back with its value");
        // A view outside the list depends on users: refused, and the transaction rolled back.
        await sql.unsafe(`CREATE VIEW users_view AS SELECT * FROM users; DELETE FROM orders;`);
        const blocked = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true, tables: ["public.users", "public.orders"] },
        });
        assert.equal(blocked.status, "failed");
        assert.match(
          blocked.error!,
          /view public\.users_view depends on table public\.users.*Nothing was changed: add those objects' tables to the list \(--table on the command line, "tables" in the API\), or restore the whole database$/,
        );
        assert.equal(await count("orders"), 0, "nothing written");
      });
    });
  },
});

Deno.test({
  name:
    'postgres manifest: public."a.b" and a.b, and names with quotes and spaces, are recorded apart and verified per (schema, table); an old-format manifest still verifies and restores',
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`
        CREATE TABLE "a.b" (x int); INSERT INTO "a.b" SELECT generate_series(1, 2);
        CREATE SCHEMA a; CREATE TABLE a.b (y int); INSERT INTO a.b SELECT generate_series(1, 3);
        CREATE SCHEMA "we ""quote"""; CREATE TABLE "we ""quote"""."a table" (z int);
        INSERT INTO "we ""quote"""."a table" VALUES (1);`);
      await withServices(db, async (services) => {
        const key = await backup(services);
        const manifest = await readManifest(services.repository, key);
        assert.deepEqual(manifest.facts.tables, [
          { schema: "a", table: "b", rows: 3 },
          { schema: "public", table: "a.b", rows: 2 },
          { schema: 'we "quote"', table: "a table", rows: 1 },
        ]);
        const v = await run(services, { kind: "verify", client_name: "app", key });
        assert.equal(v.status, "completed", v.error ?? "");
        assert.deepEqual((v.result!.checks as { comparison: unknown }).comparison, [
          { schema: "a", table: "b", manifest: 3, restored: 3 },
          { schema: "public", table: "a.b", manifest: 2, restored: 2 },
          { schema: 'we "quote"', table: "a table", manifest: 1, restored: 1 },
        ]);
        // Swapped counts must fail: the old format would have made both "a.b".
        await writeManifest(services.repository, {
          ...manifest,
          facts: {
            ...manifest.facts,
            tables: [
              { schema: "a", table: "b", rows: 2 },
              { schema: "public", table: "a.b", rows: 3 },
              { schema: 'we "quote"', table: "a table", rows: 1 },
            ],
          },
        });
        const swapped = await run(services, { kind: "verify", client_name: "app", key });
        assert.equal(swapped.status, "failed");
        assert.match(
          swapped.error!,
          /a\.b: 3 rows restored, 2 in the manifest; public\."a\.b": 2 rows restored, 3 in the manifest$/,
        );
      });
    });
    // A manifest written by the old code: {"schema.table": rows}.
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 4);
        CREATE TABLE "Audit Log" (x int); INSERT INTO "Audit Log" VALUES (1);`);
      await withServices(db, async (services) => {
        const key = await backup(services);
        const manifest = await readManifest(services.repository, key);
        await writeManifest(services.repository, {
          ...manifest,
          facts: { ...manifest.facts, tables: { "public.Audit Log": 1, "public.t": 4 } },
        });
        const v = await run(services, { kind: "verify", client_name: "app", key });
        assert.equal(v.status, "completed", v.error ?? "");
        const r = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        const copy = `${db}_sub`;
        try {
          const sub = await run(services, {
            kind: "restore",
            client_name: "app",
            key,
            params: { target: copy, tables: ["public.t"] },
          });
          assert.equal(sub.status, "completed", sub.error ?? "");
          assert.deepEqual(sub.result!.restored_tables, [
            { schema: "public", table: "t", manifest: 4, restored: 4 },
          ]);
          const c = pg(copy);
          assert.equal(await tableDigest(c, "t"), await tableDigest(sql, "t"));
          await c.end();
        } finally {
          await dropDatabase(copy);
        }
      });
    });
  },
});

Deno.test({
  name: "postgres verify: verify_url lets a role that may create databases run the rehearsal",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRoles(["app"], async ([app]) => {
      const admin = pg();
      await admin.unsafe(`ALTER ROLE "${app}" LOGIN NOCREATEDB`);
      await admin.end();
      await withDatabase(async (db, sql) => {
        await sql.unsafe(`CREATE TABLE t (id int); INSERT INTO t VALUES (1);
          ALTER TABLE t OWNER TO "${app}";`);
        await withTempDir(async (dir) => {
          const services = await testServices(dir, {
            plain: { kind: "postgres", url: url(db, app) },
            withverify: { kind: "postgres", url: url(db, app), verify_url: url("postgres") },
          });
          try {
            const b = await run(services, { kind: "backup", client_name: "plain" });
            assert.equal(b.status, "completed", b.error ?? "");
            const key = String(b.result!.key);
            const denied = await run(services, { kind: "verify", client_name: "plain", key });
            assert.equal(denied.status, "failed");
            assert.match(denied.error!, /permission denied to create database/);
            const ok = await run(services, { kind: "verify", client_name: "withverify", key });
            assert.equal(ok.status, "completed", ok.error ?? "");
          } finally {
            await services.store.close();
          }
        });
      });
    });
  },
});

Deno.test({
  name:
    "postgres restore to a URL on another server: a missing role is named, --no-owner restores there; the password is in no result or store",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const second = await startSecondPostgres();
    try {
      await withRoles(["remote_owner"], async ([owner]) => {
        await withDatabase(async (db, sql) => {
          await sql.unsafe(
            `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 12);
            ALTER TABLE t OWNER TO "${owner}";`,
          );
          await withServices(db, async (services) => {
            const key = await backup(services);
            const target = second.url("dr_copy");
            const shown = `postgres://postgres:***@127.0.0.1:${second.port}/dr_copy`;
            const missing = await run(services, {
              kind: "restore",
              client_name: "app",
              key,
              params: sealTarget(target),
            });
            assert.equal(missing.status, "failed");
            assert.equal(
              missing.error,
              `PostgreSQL at 127.0.0.1:${second.port} has no role ${owner}, which owns or is granted objects in ${key}: create it first (CREATE ROLE), or restore without owners and grants ("no_owner": true, --no-owner)`,
            );
            const r = await run(services, {
              kind: "restore",
              client_name: "app",
              key,
              params: { ...sealTarget(target), no_owner: true },
            });
            assert.equal(r.status, "completed", r.error ?? "");
            assert.equal(r.result!.target, shown);
            assert.equal(r.params.target, shown);
            const stored = JSON.stringify(await services.store.list({}, { limit: 100 }));
            assert.ok(!stored.includes(second.password), "the store never holds the password");
            const remote = postgres(target, { max: 1, onnotice: () => {} });
            try {
              const [{ n }] = await remote`SELECT count(*)::int AS n FROM t`;
              assert.equal(n, 12);
            } finally {
              await remote.end();
            }
            assert.equal(await databaseExists("dr_copy"), false, "nothing on the client's server");
          });
        });
      });
    } finally {
      await second.stop();
    }
  },
});

Deno.test({
  name:
    "postgres restore: cancelled while pg_restore runs, the fresh database is dropped and the live one is as it was",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (db, sql) => {
      await sql.unsafe(
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 12) AS v FROM generate_series(1, 600000) g;",
      );
      await withServices(db, async (services) => {
        const key = await backup(services);
        await sql.unsafe("DELETE FROM big WHERE id > 1000");
        const controller = new AbortController();
        const running = run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        }, controller.signal);
        // The restore's own pg_restore: the pids of this process's children that restore
        // into a database (other test files run theirs in other processes).
        const restoring = async () =>
          new TextDecoder().decode(
            (await new Deno.Command("pgrep", {
              args: ["-a", "-P", String(Deno.pid), "pg_restore"],
              stdout: "piped",
            }).output()).stdout,
          ).split("\n").filter((line) => line.includes("--dbname")).map((line) =>
            Number(line.split(" ")[0])
          );
        // Alive, and not a zombie waiting to be reaped (proc(5): state after the comm).
        const alive = async (pid: number) => {
          const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => null);
          return stat !== null && !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
        };
        let seen: number[] = [];
        for (let i = 0; i < 2000 && (seen = await restoring()).length === 0; i++) {
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.ok(seen.length > 0, "pg_restore started");
        controller.abort();
        const job = await running;
        assert.equal(job.status, "cancelled");
        // Gone at once as a rule; twice in full-suite runs on 2 loaded cores it was still
        // there when the job ended (not reproduced alone, nor under CPU load): allow it
        // 10 s to be reaped, and say what it was if it stays.
        for (const pid of seen) {
          const deadline = Date.now() + 10_000;
          while (await alive(pid) && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
          }
          const ps = new TextDecoder().decode(
            (await new Deno.Command("ps", {
              args: ["-o", "pid,ppid,stat,etime,args", "-p", String(pid)],
              stdout: "piped",
            }).output()).stdout,
          );
          assert.equal(await alive(pid), false, `the restore's pg_restore has exited:\n${ps}`);
        }
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM big`;
        assert.equal(n, 1000, "the live database is as it was");
        assert.deepEqual(await databasesLike(`${db}_`), [], "the fresh database was dropped");
      });
    });
  },
});

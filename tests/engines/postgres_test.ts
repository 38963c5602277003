import assert from "node:assert/strict";
import { join } from "node:path";
import { readManifest } from "../../src/repository/manifest.ts";
import {
  databaseExists,
  dropDatabase,
  passwordRole,
  pg,
  PG_HOST,
  PG_PORT,
  type Sql,
  tableDigest,
  withDatabase,
} from "../helpers/pg.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

// These databases are small, so cairn would leave compression to pg_dump; every
// test here goes through cairn's own parallel compression instead (the S3 tests
// keep pg_dump's).

const url = (db: string, user = "postgres", password = "") =>
  `postgres://${user}${password ? `:${password}` : ""}@${PG_HOST}:${PG_PORT}/${db}`;

/** Several schemas, with and without primary keys, LOBs, sequences, views, odd names, bytea. */
async function richSchema(sql: Sql): Promise<void> {
  await sql.unsafe(`
    CREATE SCHEMA sales;
    CREATE SCHEMA "Audit Log";
    CREATE TABLE public.users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, created timestamptz DEFAULT now(), meta jsonb);
    CREATE TABLE sales.orders (id serial PRIMARY KEY, user_id bigint REFERENCES public.users(id), total numeric(12,2), note text);
    CREATE TABLE sales.events_no_pk (at timestamptz, payload text);
    CREATE TABLE "Audit Log"."MixedCase Table" ("Weird ""col""" text, blob bytea);
    CREATE SEQUENCE sales.invoice_seq START 1000;
    CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE total > 500;
    INSERT INTO public.users (email, meta) SELECT 'u' || g || '@x.test', jsonb_build_object('n', g) FROM generate_series(1, 2000) g;
    INSERT INTO sales.orders (user_id, total, note) SELECT 1 + (g % 2000), g * 1.25, repeat('n', g % 50) FROM generate_series(1, 5000) g;
    INSERT INTO sales.events_no_pk SELECT now() - g * interval '1 minute', 'e' || g FROM generate_series(1, 300) g;
    INSERT INTO sales.events_no_pk SELECT now(), 'duplicate' FROM generate_series(1, 3);
    INSERT INTO "Audit Log"."MixedCase Table" VALUES ('a', '\\x00ff10deadbeef'), ('b', NULL), (NULL, decode(repeat('ab', 5000), 'hex'));
    SELECT setval('sales.invoice_seq', 4242);
    SELECT lo_from_bytea(0, convert_to('first large object', 'UTF8'));
    SELECT lo_from_bytea(0, decode(repeat('cd', 100000), 'hex'));
  `);
}

/**
 * A database with a table big enough (230 MB of rows) that its dump takes a while,
 * and services with one client, "app", on it.
 */
async function withBigTable(
  fn: (
    ctx: { db: string; dir: string; services: Awaited<ReturnType<typeof testServices>> },
  ) => Promise<void>,
): Promise<void> {
  await withDatabase(async (db, sql) => {
    await sql.unsafe(
      "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 12) AS v FROM generate_series(1, 600000) g;",
    );
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { app: { kind: "postgres", url: url(db) } });
      try {
        await fn({ db, dir, services });
      } finally {
        await services.store.close();
      }
    });
  });
}

const TABLES = [
  "public.users",
  "sales.orders",
  "sales.events_no_pk",
  `"Audit Log"."MixedCase Table"`,
];

Deno.test("postgres: backup -> verify -> restore to a new database reproduces every table, sequence, view and large object", async () => {
  await withDatabase(async (db, sql) => {
    await richSchema(sql);
    await withTempDir(async (dir) => {
      const services = await testServices(dir, {
        app: { kind: "postgres", url: url(db, "postgres", "unused-but-secret-pw") },
      });
      const copy = `${db}_copy`;
      try {
        const b = await run(services, { kind: "backup", client_name: "app" });
        assert.equal(b.status, "completed", b.error ?? "");
        assert.equal(b.result!.tables, 4);
        assert.equal(b.result!.rows, 2000 + 5000 + 303 + 3);
        const key = String(b.result!.key);
        assert.match(key, /\.dump\.zst$/);
        const manifest = await readManifest(services.repository, key);
        assert.deepEqual(manifest.facts.tables, [
          { schema: "Audit Log", table: "MixedCase Table", rows: 3 },
          { schema: "public", table: "users", rows: 2000 },
          { schema: "sales", table: "events_no_pk", rows: 303 },
          { schema: "sales", table: "orders", rows: 5000 },
        ]);
        assert.equal(manifest.facts.large_objects, 2);
        assert.match(String(manifest.facts.server_version), /^15\./);
        assert.match(String(manifest.facts.pg_dump_version), /^\d+\.\d+/);
        assert.ok(Number(manifest.facts.database_size_bytes) > 0);
        // pg_dump writes an uncompressed archive; the pipeline compresses it (zstd by default).
        assert.match(String(manifest.facts.compression), /^none in the archive/);
        assert.match(key, /\.dump\.zst$/);
        assert.deepEqual(manifest.transforms, [{ name: "zstd", level: 3 }]);
        assert.ok(!JSON.stringify(manifest).includes("unused-but-secret-pw"));
        const head = new Uint8Array(
          await new Response(await services.repository.get(key, { start: 0, end: 3 }))
            .arrayBuffer(),
        );
        assert.deepEqual([...head], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame (RFC 8878 magic)");

        const v = await run(services, { kind: "verify", client_name: "app", key });
        assert.equal(v.status, "completed", v.error ?? "");
        const checks = v.result!.checks as {
          tables_checked: number;
          comparison: unknown[];
          scratch_database: string;
        };
        assert.equal(checks.tables_checked, 4);
        assert.equal(
          await databaseExists(checks.scratch_database),
          false,
          "the scratch database was dropped",
        );

        const r = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { target: copy },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        assert.equal(r.result!.created, true);
        const restored = pg(copy);
        try {
          for (const t of TABLES) {
            assert.equal(
              await tableDigest(restored, t),
              await tableDigest(sql, t),
              `contents of ${t}`,
            );
          }
          const [{ last_value }] = await restored`SELECT last_value FROM sales.invoice_seq`;
          assert.equal(Number(last_value), 4242);
          const [{ n }] = await restored`SELECT count(*)::int AS n FROM sales.big_orders`;
          const [{ m }] = await sql`SELECT count(*)::int AS m FROM sales.big_orders`;
          assert.equal(n, m);
          const los =
            await restored`SELECT md5(lo_get(oid)) AS d FROM pg_largeobject_metadata ORDER BY 1`;
          const orig =
            await sql`SELECT md5(lo_get(oid)) AS d FROM pg_largeobject_metadata ORDER BY 1`;
          assert.deepEqual(los, orig);
          const [{ next }] = await restored`SELECT nextval('public.users_id_seq')::int AS next`;
          assert.equal(next, 2001, "owned sequences carry on where they were");
        } finally {
          await restored.end();
        }
      } finally {
        await services.store.close();
        await dropDatabase(copy);
      }
    });
  });
});

Deno.test("postgres: restore over the client's own database needs replace, then brings back the backed-up state", async () => {
  await withDatabase(async (db, sql) => {
    await sql.unsafe(
      "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;",
    );
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { app: { kind: "postgres", url: url(db) } });
      try {
        const key = String(
          (await run(services, { kind: "backup", client_name: "app" })).result!.key,
        );
        await sql.unsafe("DELETE FROM t WHERE id > 10; CREATE TABLE added_later (x int);");
        const refused = await run(services, { kind: "restore", client_name: "app", key });
        assert.equal(refused.status, "failed");
        assert.match(refused.error!, /database .* is not empty: pass --yes .* "replace": true/);
        const ok = await run(services, {
          kind: "restore",
          client_name: "app",
          key,
          params: { replace: true },
        });
        assert.equal(ok.status, "completed", ok.error ?? "");
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM t`;
        assert.equal(n, 100);
      } finally {
        await services.store.close();
      }
    });
  });
});

Deno.test("postgres: writes during the backup never make verification disagree with the manifest", async () => {
  await withDatabase(async (db, sql) => {
    await sql.unsafe(`CREATE TABLE busy (id bigserial PRIMARY KEY, payload text);
      INSERT INTO busy (payload) SELECT repeat(md5(g::text), 20) FROM generate_series(1, 150000) g;`);
    const writer = pg(db);
    let writing = true;
    let inserted = 0;
    const loop = (async () => {
      while (writing) {
        await writer`INSERT INTO busy (payload) SELECT repeat('w', 500) FROM generate_series(1, 50)`;
        inserted += 50;
      }
    })();
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { app: { kind: "postgres", url: url(db) } });
      try {
        const b = await run(services, { kind: "backup", client_name: "app" });
        assert.equal(b.status, "completed", b.error ?? "");
        const manifest = await readManifest(services.repository, String(b.result!.key));
        const counted =
          (manifest.facts.tables as Array<{ schema: string; table: string; rows: number }>)
            .find((t) => t.schema === "public" && t.table === "busy")!.rows;
        writing = false;
        await loop;
        assert.ok(inserted > 0, "the writer ran during the backup");
        const [{ now }] = await sql`SELECT count(*)::int AS now FROM busy`;
        assert.ok(
          counted >= 150000 && counted < now,
          `snapshot count ${counted} is between the start and now (${now})`,
        );
        const v = await run(services, {
          kind: "verify",
          client_name: "app",
          key: String(b.result!.key),
        });
        assert.equal(v.status, "completed", v.error ?? "");
      } finally {
        writing = false;
        await loop.catch(() => {});
        await writer.end();
        await services.store.close();
      }
    });
  });
});

Deno.test("postgres: cancelling a running backup kills pg_dump and removes the partial artifact", async () => {
  await withBigTable(async ({ dir, services }) => {
    const controller = new AbortController();
    const running = run(services, { kind: "backup", client_name: "app" }, controller.signal);
    // Only our own children: other test files run pg_dump at the same time.
    const dumping = async () =>
      new TextDecoder().decode(
        (await new Deno.Command("pgrep", {
          args: ["-a", "-P", String(Deno.pid), "pg_dump"],
          stdout: "piped",
        }).output()).stdout,
      ).includes("--snapshot");
    for (let i = 0; i < 400 && !(await dumping()); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(await dumping(), "pg_dump started");
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    const job = await running;
    assert.equal(job.status, "cancelled");
    assert.equal(await dumping(), false, "no pg_dump left running");
    assert.equal(await services.repository.stat(job.key!), null);
    assert.deepEqual([...Deno.readDirSync(join(dir, "repo", ".tmp"))], []);
  });
});

Deno.test("postgres: a dump cut off by the server fails with pg_dump's reason and leaves no artifact", async () => {
  await withBigTable(async ({ db, services }) => {
    const running = run(services, { kind: "backup", client_name: "app" });
    const admin = pg();
    try {
      // pg_dump's own session (the database is this test's alone), once it is copying.
      for (let i = 0; i < 500; i++) {
        const killed = await admin`
              SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = ${db} AND state = 'active' AND query LIKE 'COPY % TO stdout%'`;
        if (killed.length > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await admin.end();
    }
    const job = await running;
    assert.equal(job.status, "failed");
    assert.match(job.error ?? "", /pg_dump failed: .*(terminat|connection)/i);
    assert.equal(await services.repository.stat(job.key ?? "none.dump"), null);
  });
});

Deno.test("postgres: a dead server, a wrong password, a missing database and a missing pg_dump each fail distinctly", async () => {
  const { user, password } = await passwordRole();
  await withTempDir(async (dir) => {
    const fakeOld = join(dir, "pg_dump_old");
    await Deno.writeTextFile(fakeOld, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.4'\n");
    await Deno.chmod(fakeOld, 0o755);
    const services = await testServices(dir, {
      dead: { kind: "postgres", url: `postgres://postgres@127.0.0.1:1/x` },
      badpw: { kind: "postgres", url: url("postgres", user, "wrong-pw-secret") },
      nodb: { kind: "postgres", url: url("cairn_no_such_database") },
      goodpw: { kind: "postgres", url: url("postgres", user, password) },
    });
    try {
      const fail = async (client: string, pattern: RegExp) => {
        const job = await run(services, { kind: "backup", client_name: client });
        assert.equal(job.status, "failed", client);
        assert.match(job.error!, pattern, client);
        assert.ok(
          !job.error!.includes("wrong-pw-secret") && !job.error!.includes(password),
          "no password in the error",
        );
        return job.error!;
      };
      await fail("dead", /PostgreSQL at 127\.0\.0\.1:1 refused the connection/);
      await fail("badpw", /rejected the credentials of user cairn_pw_user/);
      await fail("nodb", /Database cairn_no_such_database does not exist/);
      const ok = await run(services, { kind: "backup", client_name: "goodpw" });
      assert.equal(
        ok.status,
        "completed",
        `a password role backs up through the passfile: ${ok.error}`,
      );

      services.config.tools.pg_dump = join(dir, "no-such-pg_dump");
      await fail("goodpw", /no-such-pg_dump could not be run .*point tools\.pg_dump/);
      services.config.tools.pg_dump = fakeOld;
      await fail(
        "goodpw",
        /pg_dump 12\.4 .* is older than the server \(PostgreSQL 15\.\d+.*\).*tools\.pg_dump \(or CAIRN_PG_DUMP_PATH\)/,
      );
    } finally {
      await services.store.close();
    }
  });
});

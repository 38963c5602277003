import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { runAttempt } from "../../src/runtime/attempt.ts";
import { sealTarget, unsealTarget } from "../../src/runtime/target_secrets.ts";
import { pg, PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { startRedis } from "../helpers/redis.ts";
import { run, testServices } from "../helpers/services.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";

/** Every file under `dir` (store, WAL, journal), searched for `secret` as bytes. */
async function filesHolding(dir: string, secret: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (
        e.isFile && new TextDecoder("latin1").decode(await Deno.readFile(p)).includes(secret)
      ) {
        found.push(p);
      }
    }
  };
  await walk(dir);
  return found;
}

Deno.test("target secrets: a target's password is replaced by *** plus a reference; the process holds the real one; another cannot", () => {
  const sealed = sealTarget("redis://:s3cret-Target@10.0.0.9:6390/3");
  assert.equal(sealed.target, "redis://:***@10.0.0.9:6390/3");
  assert.match(sealed.target_ref!, /^[0-9a-f-]{36}$/);
  assert.equal(unsealTarget(sealed), "redis://:s3cret-Target@10.0.0.9:6390/3");
  assert.deepEqual(sealTarget("restored_db"), { target: "restored_db" });
  assert.deepEqual(sealTarget("postgres://u@h/db"), { target: "postgres://u@h/db" });
  assert.deepEqual(sealTarget(undefined), {});
  assert.throws(
    () => unsealTarget({ target: "redis://:***@10.0.0.9:6390/3", target_ref: "from-before" }),
    /kept only in the memory of the process that queued this job, and that process has restarted \(or another one took the job\): submit the restore again/,
  );
});

Deno.test({
  name:
    "target secrets: a redis target with a password, through the API and the CLI (sqlite and jsonl stores), is never stored or printed; a job that lost it fails clearly",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const secret = "redis-target-pw-9931";
    const source = await startRedis();
    const target = await startRedis([], { password: secret });
    try {
      await source.cmd("SET", "k1", "v1");
      await source.cmd("SET", "k2", "v2");
      const targetUrl = `redis://:${secret}@127.0.0.1:${target.port}/3`;
      // API: enqueued and run by the same process.
      await withTempDir(async (dir) => {
        const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
        try {
          const b = await run(services, { kind: "backup", client_name: "cache" });
          assert.equal(b.status, "completed", b.error ?? "");
          const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
          const res = await app.request(
            `/admin/backups/${encodeURIComponent(String(b.key))}/restore`,
            {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ target: targetUrl, flush: true }),
            },
          );
          assert.equal(res.status, 202, await res.clone().text());
          const { data } = await res.json();
          const queued = (await services.store.get(data.job_id))!;
          assert.equal(queued.params.target, `redis://:***@127.0.0.1:${target.port}/3`);
          const claimed = await services.store.claim(
            { owner: services.owner, leaseMs: 60_000 },
            { id: data.job_id },
          );
          const done = await runAttempt(services, claimed!, { controller: new AbortController() });
          assert.equal(done.status, "completed", done.error ?? "");
          const keyspace = await target.cmd("INFO", "keyspace");
          const info = keyspace instanceof Uint8Array
            ? new TextDecoder().decode(keyspace)
            : String(keyspace);
          assert.match(
            info,
            /db\d+:keys=2,/,
            `restored into the target: ${info} ${JSON.stringify(done.result)}`,
          );
          const listed = await (await app.request("/admin/backups/jobs")).text();
          assert.ok(!listed.includes(secret));
          // As after a restart: the record is there, the credential is not.
          const lost = await run(services, {
            kind: "restore",
            client_name: "cache",
            key: String(b.key),
            params: { target: queued.params.target, target_ref: crypto.randomUUID() },
          });
          assert.equal(lost.status, "failed");
          assert.match(lost.error!, /submit the restore again$/);
        } finally {
          await services.store.close();
        }
        assert.deepEqual(await filesHolding(dir, secret), [], "no file of the store holds it");
      });
      // CLI, each store kind.
      for (const store of ["sqlite", "jsonl"] as const) {
        await withTempDir(async (dir) => {
          const config = await writeConfig(dir, {
            store,
            clients: { cache: { kind: "redis", url: source.url } },
          });
          const b = await cairn(["backup", "cache", "--json", "--config", config]);
          assert.equal(b.code, 0, b.stderr);
          const key = JSON.parse(b.stdout).key;
          const r = await cairn([
            "restore",
            key,
            "--target",
            targetUrl,
            "--yes",
            "--flush",
            "--json",
            "--config",
            config,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), r.stdout);
          const job = JSON.parse(r.stdout);
          assert.equal(job.params.target, `redis://:***@127.0.0.1:${target.port}/3`);
          const jobs = await cairn(["jobs", "--json", "--config", config]);
          assert.equal(jobs.code, 0, jobs.stderr);
          assert.ok(!jobs.stdout.includes(secret), jobs.stdout);
          assert.deepEqual(await filesHolding(dir, secret), [], `${store}: no file holds it`);
        });
      }
    } finally {
      await source.stop();
      await target.stop();
    }
  },
});

/** A role that logs in with a password and may create databases (pg_hba line added once). */
async function restoringRole(): Promise<{ user: string; password: string }> {
  const user = "cairn_pw_restorer", password = "pg-target-pw-5521";
  const admin = pg();
  try {
    await admin.unsafe(
      `DO $$ BEGIN CREATE ROLE ${user} LOGIN CREATEDB PASSWORD '${password}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    );
    await admin.unsafe(`ALTER ROLE ${user} LOGIN CREATEDB PASSWORD '${password}'`);
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

Deno.test({
  name:
    "target secrets: a postgres:// target URL with a password restores there through the CLI, and the password is in no output, argv or store",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { user, password } = await restoringRole();
    await withDatabase(async (db, sql) => {
      await sql.unsafe(`CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 9);`);
      const copy = `${db}_url`;
      try {
        await withTempDir(async (dir) => {
          const config = await writeConfig(dir, {
            clients: {
              app: { kind: "postgres", url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}` },
            },
          });
          const b = await cairn(["backup", "app", "--json", "--config", config]);
          assert.equal(b.code, 0, b.stderr);
          const key = JSON.parse(b.stdout).key;
          const targetUrl = `postgres://${user}:${password}@${PG_HOST}:${PG_PORT}/${copy}`;
          // The objects belong to postgres, which this role may not assign: --no-owner.
          const r = await cairn([
            "restore",
            key,
            "--target",
            targetUrl,
            "--no-owner",
            "--json",
            "--config",
            config,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password));
          const job = JSON.parse(r.stdout);
          const shown = `postgres://${user}:***@${PG_HOST}:${PG_PORT}/${copy}`;
          assert.equal(job.params.target, shown);
          assert.equal(job.result.target, shown);
          assert.equal(job.result.tables, 1);
          const jobs = await cairn(["jobs", "--json", "--config", config]);
          assert.ok(!jobs.stdout.includes(password));
          assert.deepEqual(await filesHolding(dir, password), []);
        });
        const restored = pg(copy);
        const [{ n, owner }] = await restored`
          SELECT count(*)::int AS n, (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 't') AS owner FROM t`;
        await restored.end();
        assert.deepEqual([n, owner], [9, user], "restored on the target's connection, as its role");
      } finally {
        const admin = pg();
        await admin.unsafe(`DROP DATABASE IF EXISTS "${copy}" WITH (FORCE)`);
        await admin.end();
      }
    });
  },
});

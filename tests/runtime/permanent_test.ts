import assert from "node:assert/strict";
import { join } from "node:path";
import { isPermanentToolFailure } from "../../src/engines/postgres/failure_kind.ts";
import { SKIP_FAULTS, withoutDacOverride } from "../helpers/mounts.ts";
import { withDatabase } from "../helpers/pg.ts";
import {
  cairn,
  CAIRN_PERMISSIONS,
  MAIN,
  makeTree,
  withTempDir,
  writeConfig,
} from "../helpers/tmp.ts";

/**
 * Failures that another attempt cannot fix go to the dead-letter queue at the first
 * attempt, however many attempts the job has: a retry with backoff only delays the
 * operator's fix.
 */
async function failedJob(config: string, client: string, asRootWithoutDac = false) {
  const cmd = asRootWithoutDac ? withoutDacOverride([Deno.execPath()]) : [Deno.execPath()];
  const out = await new Deno.Command(cmd[0], {
    args: [
      ...cmd.slice(1),
      "run",
      ...CAIRN_PERMISSIONS,
      MAIN,
      "backup",
      client,
      "--json",
      "--config",
      config,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1, new TextDecoder().decode(out.stderr));
  const jobs = JSON.parse((await cairn(["jobs", "--json", "--config", config])).stdout);
  const list = Array.isArray(jobs) ? jobs : jobs.jobs;
  assert.equal(list.length, 1);
  return list[0];
}

Deno.test("permanent: a missing directory fails at the first of 3 attempts", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, {
      clients: { gone: { kind: "directory", path: join(dir, "nowhere") } },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    const job = await failedJob(config, "gone");
    assert.equal(job.status, "failed");
    assert.equal(job.attempts, 1);
    assert.match(job.error, /nowhere of client gone: it does not exist/);
  });
});

Deno.test("permanent: a file that cannot be read fails at the first of 3 attempts", {
  ignore: SKIP_FAULTS,
}, async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    await Deno.writeTextFile(join(src, "secret.key"), "k");
    await Deno.chmod(join(src, "secret.key"), 0o000);
    const config = await writeConfig(dir, {
      clients: { files: { kind: "directory", path: src } },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    await Deno.chmod(dir, 0o755);
    const job = await failedJob(config, "files", true);
    assert.equal(job.status, "failed");
    assert.equal(job.attempts, 1);
    assert.match(job.error, /secret\.key: Cannot open: Permission denied/);
  });
});

Deno.test("permanent: a SQLite file that cannot be opened fails at the first of 3 attempts", async () => {
  await withTempDir(async (dir) => {
    const bogus = join(dir, "app.db");
    await Deno.writeTextFile(bogus, "this is not a database, just text long enough to be read");
    const config = await writeConfig(dir, {
      clients: {
        gone: { kind: "sqlite", path: join(dir, "missing.db") },
        bogus: { kind: "sqlite", path: bogus },
      },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    const gone = await failedJob(config, "gone");
    assert.equal(gone.attempts, 1);
    assert.match(gone.error, /missing\.db of client gone does not exist/);
  });
  await withTempDir(async (dir) => {
    const bogus = join(dir, "app.db");
    await Deno.writeTextFile(bogus, "this is not a database, just text long enough to be read");
    const config = await writeConfig(dir, {
      clients: { bogus: { kind: "sqlite", path: bogus } },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    const job = await failedJob(config, "bogus");
    assert.equal(job.attempts, 1);
    assert.match(job.error, /is not a SQLite database/);
  });
});

Deno.test({
  name: "permanent: pg_dump refused a table (permission denied) fails at the first of 3 attempts",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withDatabase(async (db, sql) => {
      const role = `cairn_t_ro_${crypto.randomUUID().slice(0, 8)}`;
      await sql.unsafe(`CREATE ROLE ${role} LOGIN`);
      try {
        await sql.unsafe(`CREATE TABLE secret (id int)`);
        await sql.unsafe(`REVOKE ALL ON secret FROM PUBLIC`);
        await withTempDir(async (dir) => {
          const config = await writeConfig(dir, {
            clients: { db: { kind: "postgres", url: `postgres://${role}@127.0.0.1:5432/${db}` } },
            backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
          });
          const job = await failedJob(config, "db");
          assert.equal(job.attempts, 1);
          assert.match(job.error, /permission denied for table secret/);
        });
      } finally {
        await sql.unsafe(`DROP TABLE IF EXISTS secret`);
        await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
      }
    });
  },
});

Deno.test("isPermanentToolFailure: privileges, roles, databases and credentials; not a dropped connection", () => {
  for (
    const line of [
      "pg_dump: error: query failed: ERROR:  permission denied for table secret",
      "pg_restore: error: could not execute query: ERROR:  must be owner of table t",
      'pg_restore: error: could not execute query: ERROR:  role "app" does not exist',
      'pg_dump: error: connection to server failed: FATAL:  database "x" does not exist',
      'FATAL:  password authentication failed for user "app"',
      'FATAL:  no pg_hba.conf entry for host "10.0.0.1"',
    ]
  ) assert.ok(isPermanentToolFailure(line), line);
  for (
    const line of [
      "pg_dump: error: connection to server at 127.0.0.1, port 5432 failed: Connection refused",
      "server closed the connection unexpectedly",
      "ERROR:  canceling statement due to lock timeout",
    ]
  ) assert.ok(!isPermanentToolFailure(line), line);
});

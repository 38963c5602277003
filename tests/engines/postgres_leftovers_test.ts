/**
 * The fresh `<db>_cairn_new_<id>` database of a whole-database restore killed part way
 * is dropped by the sweep, and only when the process that made it is provably gone
 * (engines/postgres/leftovers.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePgUrl } from "../../src/engines/postgres/conn.ts";
import {
  parseRestoreMark,
  restoreMark,
  sweepFreshDatabases,
} from "../../src/engines/postgres/leftovers.ts";
import { formatOwner, initProcessId, parseStatStart } from "../../src/io/process_id.ts";
import { configureLog } from "../../src/log.ts";
import { runSweep } from "../../src/runtime/sweeper.ts";
import { waitFor } from "../helpers/daemon.ts";
import { databaseExists, pg, PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { testServices } from "../helpers/services.ts";
import { cairn, CAIRN_PERMISSIONS, MAIN, withTempDir } from "../helpers/tmp.ts";

const url = (db: string) => `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}`;
const slow = { sanitizeResources: false, sanitizeOps: false };

/** The fresh databases beside `db` with their comments. */
async function freshBeside(db: string): Promise<Array<{ name: string; comment: string | null }>> {
  const admin = pg();
  try {
    return (await admin`
      SELECT datname AS name, shobj_description(oid, 'pg_database') AS comment
      FROM pg_database WHERE starts_with(datname, ${db + "_cairn_new_"}) ORDER BY 1`)
      .map((r) => ({ name: r.name as string, comment: r.comment as string | null }));
  } finally {
    await admin.end();
  }
}

Deno.test("postgres leftovers: a restore mark names its process and time; other comments are no mark", () => {
  const at = new Date("2026-11-30T12:00:00Z");
  const mark = parseRestoreMark(restoreMark(at));
  assert.equal(mark?.created_at, "2026-11-30T12:00:00.000Z");
  assert.match(mark!.owner, new RegExp(`^cairn1 \\S+ ${Deno.pid} \\S+ restore$`));
  assert.equal(parseRestoreMark(null), null);
  assert.equal(parseRestoreMark("the production database"), null);
  assert.equal(parseRestoreMark('{"cairn_restore":{"owner":1}}'), null);
  assert.equal(parseRestoreMark("{}"), null);
});

Deno.test({
  name:
    "postgres leftovers: the sweep drops a fresh database only when its maker is a dead process of this host",
  ...slow,
  fn: () =>
    withDatabase(async (db) => {
      configureLog({ to: () => {} });
      const here = await initProcessId();
      // A process that existed and is gone: its identity (pid and start time) is dead.
      const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
      const start = parseStatStart(await Deno.readTextFile(`/proc/${sleeper.pid}/stat`))!;
      sleeper.kill("SIGKILL");
      await sleeper.status;
      const dead = formatOwner({ ...here, pid: sleeper.pid, start }, "restore");
      const mark = (owner: string) =>
        JSON.stringify({ cairn_restore: { owner, created_at: "2026-11-30T12:00:00.000Z" } });
      const cases: Record<string, string | null> = {
        [`${db}_cairn_new_aaaaaaaa`]: restoreMark(), // this process: a restore still running
        [`${db}_cairn_new_bbbbbbbb`]: mark(`cairn1 other-host/boot/1 ${sleeper.pid} ${start} r`),
        [`${db}_cairn_new_cccccccc`]: null, // no mark: made by an older cairn, or killed before it
        [`${db}_cairn_new_dddddddd`]: mark(dead),
        [`${db}_cairn_new_eeeeeeee`]: "an operator's own comment",
        [`${db}_cairn_new_dead`]: mark(dead), // not the name a restore gives
      };
      const admin = pg();
      try {
        for (const [name, comment] of Object.entries(cases)) {
          await admin.unsafe(`CREATE DATABASE "${name}"`);
          if (comment !== null) {
            await admin.unsafe(
              `COMMENT ON DATABASE "${name}" IS '${comment.replaceAll("'", "''")}'`,
            );
          }
        }
        // The server is shared: what other tests' killed restores left may go too.
        const dropped = (await sweepFreshDatabases(parsePgUrl(url(db))))
          .filter((name) => name.startsWith(db));
        assert.deepEqual(dropped, [`${db}_cairn_new_dddddddd`]);
        assert.deepEqual(
          (await freshBeside(db)).map((d) => d.name),
          [
            `${db}_cairn_new_aaaaaaaa`,
            `${db}_cairn_new_bbbbbbbb`,
            `${db}_cairn_new_cccccccc`,
            `${db}_cairn_new_dead`,
            `${db}_cairn_new_eeeeeeee`,
          ],
        );
      } finally {
        for (const name of Object.keys(cases)) {
          await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
        }
        await admin.end();
      }
    }),
});

Deno.test({
  name:
    "postgres leftovers: a CLI restore killed with SIGKILL mid-restore leaves its marked database; the sweep drops it and logs it; a whole restore leaves no mark",
  ...slow,
  fn: () =>
    withDatabase(async (db, sql) => {
      // Enough to restore for a while: many tables, one of them large.
      await sql.unsafe(`
        DO $$ BEGIN FOR i IN 1..150 LOOP
          EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
        END LOOP; END $$;
        CREATE TABLE big (id int PRIMARY KEY, v text);
        INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;`);
      await withTempDir(async (dir) => {
        const config = join(dir, "cairn.yaml");
        await Deno.writeTextFile(
          config,
          JSON.stringify({
            store: { kind: "sqlite", path: join(dir, "cairn.db") },
            repository: { kind: "fs", path: join(dir, "repo") },
            backup: { worker_max_attempts: 1 },
            clients: { app: { kind: "postgres", url: url(db) } },
          }),
        );
        const b = await cairn(["backup", "app", "--config", config, "--json"]);
        assert.equal(b.code, 0, b.stderr);
        const key = JSON.parse(b.stdout).result.key as string;

        const restore = new Deno.Command(Deno.execPath(), {
          args: ["run", ...CAIRN_PERMISSIONS, MAIN, "restore", key, "--yes", "--config", config],
          stdout: "null",
          stderr: "null",
        }).spawn();
        let leftover: { name: string; comment: string | null };
        try {
          leftover = await waitFor(async () => {
            const [d] = await freshBeside(db);
            return d && parseRestoreMark(d.comment) ? d : null;
          }, "the restore's fresh database, marked");
        } finally {
          restore.kill("SIGKILL");
          await restore.status;
        }
        const mark = parseRestoreMark(leftover.comment)!;
        assert.match(mark.owner, new RegExp(`^cairn1 \\S+ ${restore.pid} \\d+ restore$`));
        assert.ok(await databaseExists(leftover.name), "the killed restore left its database");

        const lines: string[] = [];
        const services = await testServices(join(dir, "sweeper"), {
          app: { kind: "postgres", url: url(db) },
        });
        configureLog({ to: (line) => lines.push(line) });
        try {
          const report = await runSweep(services, "test");
          assert.deepEqual(
            report?.restore_leftovers.filter((name) => name.startsWith(db)),
            [leftover.name],
          );
        } finally {
          configureLog({ to: () => {} });
          await services.store.close();
        }
        assert.equal(await databaseExists(leftover.name), false);
        const logged = lines.map((l) => JSON.parse(l)).find((l) =>
          l.msg === "Dropped the database a killed restore left"
        );
        assert.equal(logged?.database, leftover.name);
        assert.equal(logged?.restore_owner, mark.owner);
        // The target was never touched: the restore died before its swap.
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM big`;
        assert.equal(n, 200000);

        // A restore that finishes: its database takes the target's name without the mark.
        const ok = await cairn(["restore", key, "--yes", "--config", config]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.deepEqual(await freshBeside(db), []);
        const admin = pg();
        try {
          const [{ comment }] = await admin`
            SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database
            WHERE datname = ${db}`;
          assert.equal(comment, null);
        } finally {
          await admin.end();
        }
      });
    }),
});

/**
 * Backups written by the release before the artifact pipeline (tests/fixtures/release_v1,
 * made by make_release_v1.ts at commit 3ac97ad) stay listable, verifiable and
 * restorable: format-1 manifests, a .tar.gz the directory engine gzipped itself, a
 * .dump pg_dump compressed, a plain .rdb and .sqlite.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { listBackups } from "../../src/repository/manifest.ts";
import { dropDatabase, pg, withDatabase } from "../helpers/pg.ts";
import { startRedis } from "../helpers/redis.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

const FIXTURE = new URL("../fixtures/release_v1/", import.meta.url).pathname;

Deno.test({
  name: "release v1 backups of every kind list, verify and restore under the pipeline",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const expected = JSON.parse(await Deno.readTextFile(join(FIXTURE, "expected.json")));
    await withTempDir(async (dir) => {
      await new Deno.Command("cp", { args: ["-a", join(FIXTURE, "repo"), join(dir, "repo")] })
        .output();
      const redis = await startRedis();
      await withDatabase(async (db) => {
        const services = await testServices(dir, {
          files: { kind: "directory", path: join(dir, "files-target") },
          lite: { kind: "sqlite", path: join(dir, "lite.db") },
          app: { kind: "postgres", url: `postgres://postgres@127.0.0.1:5432/${db}` },
          cache: { kind: "redis", url: redis.url },
        });
        const copy = `${db}_v1`;
        try {
          const listed = await listBackups(services.repository);
          assert.deepEqual(
            listed.backups.map((b) => b.key).sort(),
            Object.values(expected.keys as Record<string, string>).sort(),
          );
          for (const [client, key] of Object.entries(expected.keys as Record<string, string>)) {
            const v = await run(services, { kind: "verify", client_name: client, key });
            assert.equal(v.status, "completed", `${client}: ${v.error}`);
          }
          const k = expected.keys as Record<string, string>;
          const files = await run(services, {
            kind: "restore",
            client_name: "files",
            key: k.files,
          });
          assert.equal(files.status, "completed", files.error ?? "");
          for (const [path, text] of Object.entries(expected.directory as Record<string, string>)) {
            assert.equal(await Deno.readTextFile(join(dir, "files-target", path)), text);
          }
          const lite = await run(services, { kind: "restore", client_name: "lite", key: k.lite });
          assert.equal(lite.status, "completed", lite.error ?? "");
          const ldb = new DatabaseSync(join(dir, "lite.db"), { readOnly: true });
          assert.equal(
            (ldb.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n,
            expected.sqlite_rows,
          );
          ldb.close();
          const app = await run(services, {
            kind: "restore",
            client_name: "app",
            key: k.app,
            params: { target: copy },
          });
          assert.equal(app.status, "completed", app.error ?? "");
          const sql = pg(copy);
          const [{ n }] = await sql`SELECT count(*)::int AS n FROM t`;
          await sql.end();
          assert.equal(n, expected.postgres_rows);
          const cache = await run(services, {
            kind: "restore",
            client_name: "cache",
            key: k.cache,
            params: { target: redis.url },
          });
          assert.equal(cache.status, "completed", cache.error ?? "");
          assert.equal(await redis.digest(), expected.redis_digest);
        } finally {
          await services.store.close();
          await dropDatabase(copy).catch(() => {});
          await redis.stop();
        }
      });
    });
  },
});

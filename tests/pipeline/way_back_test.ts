/**
 * The way back without cairn (README "Restoring without cairn"): an encrypted, zstd
 * compressed artifact of each kind opened with the standard tools alone
 * (age -d -i key.txt, zstd -d), then handed to the kind's own tool.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { dropDatabase, pg, withDatabase } from "../helpers/pg.ts";
import { startRedis } from "../helpers/redis.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

async function sh(script: string, cwd: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `${script}\n${new TextDecoder().decode(out.stderr)}`);
  return text;
}

Deno.test({
  name: "way back: age -d | zstd -d, then pg_restore, tar -x, sqlite3, redis-check-rdb",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const identity = await generateIdentity();
      await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
      const repo = {
        kind: "fs",
        path: join(dir, "repo"),
        encryption: { recipients: [await identityToRecipient(identity)] },
      };
      await Deno.mkdir(join(dir, "tree", "sub"), { recursive: true });
      await Deno.writeTextFile(join(dir, "tree", "sub", "f.txt"), "way back\n");
      const lite = new DatabaseSync(join(dir, "lite.db"));
      lite.exec("CREATE TABLE t (v); INSERT INTO t VALUES (1), (2), (3);");
      lite.close();
      const redis = await startRedis();
      await redis.cmd("SET", "k", "v");
      await withDatabase(async (db, sql) => {
        await sql.unsafe("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 42) g");
        const services = await testServices(
          dir,
          {
            files: { kind: "directory", path: join(dir, "tree") },
            lite: { kind: "sqlite", path: join(dir, "lite.db") },
            app: { kind: "postgres", url: `postgres://postgres@127.0.0.1:5432/${db}` },
            cache: { kind: "redis", url: redis.url },
          },
          {},
          repo,
        );
        const copy = `${db}_wayback`;
        try {
          const keys: Record<string, string> = {};
          for (const c of ["files", "lite", "app", "cache"]) {
            const b = await run(services, { kind: "backup", client_name: c });
            assert.equal(b.status, "completed", b.error ?? "");
            keys[c] = join(dir, "repo", String(b.result!.key));
            assert.match(keys[c], /\.zst\.age$/);
          }
          const open = (file: string, out: string) =>
            `age -d -i key.txt '${file}' | zstd -d -q -o '${out}'`;
          await sh(`${open(keys.files, "files.tar")}; mkdir out; tar -x -f files.tar -C out`, dir);
          assert.equal(await Deno.readTextFile(join(dir, "out", "sub", "f.txt")), "way back\n");
          const rows = await sh(
            `${open(keys.lite, "lite.sqlite")}; sqlite3 lite.sqlite 'SELECT count(*) FROM t'`,
            dir,
          );
          assert.equal(rows.trim(), "3");
          await sh(
            `${open(keys.app, "app.dump")}; createdb -h 127.0.0.1 -U postgres ${copy}; ` +
              `pg_restore -h 127.0.0.1 -U postgres -d ${copy} app.dump`,
            dir,
          );
          const c = pg(copy);
          const [{ n }] = await c`SELECT count(*)::int AS n FROM t`;
          await c.end();
          assert.equal(n, 42);
          const check = await sh(
            `${open(keys.cache, "cache.rdb")}; redis-check-rdb cache.rdb`,
            dir,
          );
          assert.match(check, /RDB looks OK/);
        } finally {
          await services.store.close();
          await dropDatabase(copy).catch(() => {});
          await redis.stop();
        }
      });
    });
  },
});

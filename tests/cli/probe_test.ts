import assert from "node:assert/strict";
import { join } from "node:path";
import { requirePostgres } from "../helpers/pg.ts";
import { startRedis } from "../helpers/redis.ts";
import { startS3 } from "../helpers/s3.ts";
import { cairn, freePort, makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test({
  name:
    "cli: config check --probe checks the repository, the tools and every client, one line each",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await requirePostgres();
    const redis = await startRedis([], { password: "probe-pw" });
    const s3 = await startS3(["probe-src"]);
    try {
      await withTempDir(async (dir) => {
        const files = join(dir, "files");
        await makeTree(files);
        const good = await writeConfig(dir, {
          clients: {
            db: { kind: "postgres", url: "postgres://postgres@127.0.0.1:5432/postgres" },
            cache: { kind: "redis", url: `redis://:probe-pw@127.0.0.1:${redis.port}` },
            bucket: {
              kind: "s3",
              endpoint: s3.endpoint,
              bucket: "probe-src",
              access_key_id: s3.accessKeyId,
              secret_access_key: s3.secretAccessKey,
            },
            files: { kind: "directory", path: files },
          },
        });
        const ok = await cairn(["config", "check", "--probe", "--config", good]);
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
        const lines = ok.stdout.split("\n").filter((l) => /^(ok|FAIL) /.test(l));
        assert.deepEqual(lines.map((l) => l.slice(0, l.indexOf(":"))), [
          "ok    repository (fs)",
          "ok    tool pg_dump",
          "ok    tool pg_restore",
          "ok    tool tar",
          "ok    client db (postgres)",
          "ok    client cache (redis)",
          "ok    client bucket (s3)",
          "ok    client files (directory)",
        ]);
        assert.match(ok.stdout, /client db \(postgres\): connected to PostgreSQL \d+/);
        assert.ok(!ok.stdout.includes("probe-pw"));

        const bad = await writeConfig(join(dir), {
          clients: {
            db: { kind: "postgres", url: `postgres://postgres@127.0.0.1:${freePort()}/postgres` },
            cache: { kind: "redis", url: `redis://:wrong-pw@127.0.0.1:${redis.port}` },
            files: { kind: "directory", path: join(dir, "nowhere") },
            lite: { kind: "sqlite", path: join(files, "a.txt") },
          },
        });
        const failed = await cairn(["config", "check", "--probe", "--config", bad], {
          env: { CAIRN_TAR_PATH: "/nonexistent/tar" },
        });
        assert.equal(failed.code, 1, failed.stdout + failed.stderr);
        assert.match(failed.stdout, /^FAIL {2}client db \(postgres\): .*refused/m);
        assert.match(failed.stdout, /^FAIL {2}client cache \(redis\): .*rejected the credentials/m);
        assert.match(failed.stdout, /^FAIL {2}client files \(directory\): .*nowhere/m);
        assert.match(failed.stdout, /^FAIL {2}client lite \(sqlite\): .*not a SQLite database/m);
        assert.match(failed.stdout, /^FAIL {2}tool tar: .*\/nonexistent\/tar/m);
        assert.match(failed.stdout, /# probe: 5 checks failed/);
        assert.ok(!failed.stdout.includes("wrong-pw"));
      });
    } finally {
      await redis.stop();
      await s3.stop();
    }
  },
});

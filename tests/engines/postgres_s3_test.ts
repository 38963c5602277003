import assert from "node:assert/strict";
import { listBackups } from "../../src/repository/manifest.ts";
import { dropDatabase, pg, PG_HOST, PG_PORT, tableDigest, withDatabase } from "../helpers/pg.ts";
import { s3Repository, startS3 } from "../helpers/s3.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

Deno.test("postgres into an S3 repository: backup streams through multipart upload, verify and restore read it back", async () => {
  const s3 = await startS3(["pg-backups"]);
  try {
    await withDatabase(async (db, sql) => {
      // Big enough for several 16 MiB parts once dumped.
      await sql.unsafe(
        `CREATE TABLE t AS SELECT g AS id, encode(sha512(g::text::bytea), 'base64') || encode(sha512((g+1)::text::bytea), 'hex') AS v
        FROM generate_series(1, 250000) g;`,
      );
      await withTempDir(async (dir) => {
        const services = await testServices(
          dir,
          { app: { kind: "postgres", url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}` } },
          {},
          s3Repository(s3, "pg-backups", "host-a"),
        );
        const copy = `${db}_from_s3`;
        try {
          const b = await run(services, { kind: "backup", client_name: "app" });
          assert.equal(b.status, "completed", b.error ?? "");
          assert.ok(
            Number(b.result!.size_bytes) > 32 * 1024 * 1024,
            `multipart-sized artifact (${b.result!.size_bytes} bytes)`,
          );
          const listed = await listBackups(services.repository);
          assert.equal(listed.backups.length, 1);
          const key = listed.backups[0].key;
          const v = await run(services, { kind: "verify", client_name: "app", key });
          assert.equal(v.status, "completed", v.error ?? "");
          const r = await run(services, {
            kind: "restore",
            client_name: "app",
            key,
            params: { target: copy },
          });
          assert.equal(r.status, "completed", r.error ?? "");
          const restored = pg(copy);
          try {
            assert.equal(await tableDigest(restored, "t"), await tableDigest(sql, "t"));
          } finally {
            await restored.end();
          }
        } finally {
          await services.store.close();
          await dropDatabase(copy);
        }
      });
    });
  } finally {
    await s3.stop();
  }
});

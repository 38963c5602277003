import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { writeManifest } from "../../src/repository/manifest.ts";
import { testServices } from "../helpers/services.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test("api restore body: tables must be schema.table, and tables / no_owner / keep_old only go to postgres clients", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      db: { kind: "postgres", url: "postgres://app@127.0.0.1:5432/app" },
      cache: { kind: "redis", url: "redis://127.0.0.1:6379" },
    });
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const manifest = (client: string, kind: string, ext: string) => ({
        format_version: 1,
        key: `backups/${client}/20261130T100000000Z-manual.${ext}`,
        client_name: client,
        kind,
        label: "manual",
        created_at: "2026-11-30T10:00:00.000Z",
        size_bytes: 1,
        sha256: "0".repeat(64),
        job_id: 1,
        schedule_id: null,
        tool_versions: {},
        facts: {},
      });
      const pgKey = manifest("db", "postgres", "dump");
      const redisKey = manifest("cache", "redis", "rdb");
      // deno-lint-ignore no-explicit-any
      await writeManifest(services.repository, pgKey as any);
      // deno-lint-ignore no-explicit-any
      await writeManifest(services.repository, redisKey as any);
      const post = (key: string, body: unknown) =>
        app.request(`/admin/backups/${encodeURIComponent(key)}/restore`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const bad = await post(pgKey.key, { tables: ["users", 'public."a.b"'] });
      assert.equal(bad.status, 400);
      const body = await bad.json();
      assert.equal(body.code, "VALIDATION_FAILED");
      assert.equal(body.details.length, 1);
      assert.equal(body.details[0].path, "tables.0");
      assert.match(body.details[0].message, /"users" is not schema\.table: name the schema/);
      const redis = await post(redisKey.key, { tables: ["public.t"], keep_old: true });
      assert.equal(redis.status, 400);
      assert.match(
        (await redis.json()).message,
        /tables, keep_old apply only to PostgreSQL restores; client cache is of kind redis/,
      );
      const ok = await post(pgKey.key, {
        tables: ['public."a.b"', "a.b"],
        no_owner: true,
        keep_old: true,
        replace: true,
      });
      assert.equal(ok.status, 202, await ok.clone().text());
      const job = (await services.store.get((await ok.json()).data.job_id))!;
      assert.deepEqual(job.params, {
        replace: true,
        tables: ['public."a.b"', "a.b"],
        no_owner: true,
        keep_old: true,
      });
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("cli restore: a --table that is not schema.table is a usage error (exit 2)", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, {
      clients: { db: { kind: "postgres", url: "postgres://app@127.0.0.1:5432/app" } },
    });
    const r = await cairn([
      "restore",
      "backups/db/20261130T100000000Z-manual.dump",
      "--table",
      "public.ok",
      "--table",
      "no_schema",
      "--config",
      config,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /Invalid --table: "no_schema" is not schema\.table/);
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { testServices } from "../helpers/services.ts";
import { cairn, makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

/**
 * A restore that is a usage mistake is refused before it becomes a job: 400 on the API
 * and exit 2 on the CLI, each naming its own way to say "replace"; nothing reaches the
 * job store, so nothing reaches the dead-letter queue or a bulk requeue.
 */
Deno.test({
  name:
    "preflight: occupied targets, bad s3:// targets and targets of the wrong shape never become jobs",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await makeTree(src);
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
      });
      const backup = JSON.parse(
        (await cairn(["backup", "files", "--json", "--config", config])).stdout,
      );
      const key: string = backup.result.key;

      const cli = await cairn(["restore", key, "--target", src, "--config", config]);
      assert.equal(cli.code, 2);
      assert.match(cli.stderr, /Restore target .*src is not empty: pass --yes to overwrite it/);
      const url = await cairn(["restore", key, "--target", "redis://h:6379", "--config", config]);
      assert.equal(url.code, 2);
      assert.match(
        url.stderr,
        /Invalid --target: a directory restore goes to a path, not redis:\/\/h:6379/,
      );

      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
        const restore = (body: unknown) =>
          app.request(`/admin/backups/${encodeURIComponent(key)}/restore`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
        const occupied = await restore({ target: src });
        assert.equal(occupied.status, 400);
        const o = await occupied.json();
        assert.equal(o.code, "TARGET_NOT_EMPTY");
        assert.match(o.message, /is not empty: pass "replace": true to overwrite it$/);
        const shape = await (await restore({ target: "s3://bucket/x" })).json();
        assert.equal(shape.code, "VALIDATION_FAILED");
        assert.equal(shape.details[0].path, "target");
        const fresh = await restore({ target: join(dir, "elsewhere") });
        assert.equal(fresh.status, 202, await fresh.clone().text());
        const replace = await restore({ target: src, replace: true });
        assert.equal(replace.status, 202);
        const { jobs } = await services.store.list({ kind: "restore" }, { limit: 50 });
        assert.equal(jobs.length, 2, "only the two valid restores became jobs");
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "preflight: an s3 target must be s3://BUCKET/PREFIX; a redis target a redis:// URL",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { checkTargetShape } = await import("../../src/runtime/restore_preflight.ts");
    const manifest = (kind: string) => ({ kind, key: `backups/c/20261121T020000000Z-manual.x` });
    const s3 = {
      kind: "s3",
      endpoint: "http://127.0.0.1:9",
      region: "us-east-1",
      bucket: "src-bucket",
      prefixes: [],
      access_key_id: "a",
      secret_access_key: "b",
    };
    const check = (client: unknown, target: string, surface: "cli" | "api" = "api") =>
      checkTargetShape(
        {
          clientName: "c",
          client: client as never,
          manifest: manifest((client as { kind: string }).kind) as never,
          target,
          replace: false,
          flush: false,
        },
        surface,
      );
    for (const bad of ["s3://ab", "s3://Bucket/x", "s3://bucket/../x", "bucket/x", "/tmp/x"]) {
      assert.throws(() => check(s3, bad), /Invalid target: .* is not s3:\/\/BUCKET\/PREFIX/, bad);
    }
    check(s3, "s3://restore-bucket/some/prefix/");
    const redis = { kind: "redis", url: "redis://127.0.0.1:6379" };
    assert.throws(() => check(redis, "/var/lib/x"), /Invalid Redis restore target/);
    check(redis, "redis://:pw@127.0.0.1:6390/3");
    const pg = { kind: "postgres", url: "postgres://app@127.0.0.1:5432/app" };
    assert.throws(() => check(pg, "s3://bucket/x"), /a database name, or a postgres:\/\/ URL/);
    assert.throws(() => check(pg, "bad name; drop"), /Invalid restore target/);
    check(pg, "app_copy");
    check(pg, "postgres://u:p@10.0.0.9:5433/other");
  },
});

Deno.test({
  name:
    "preflight: --flush is for Redis only; some tables into a database that holds others is no usage mistake",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { preflightRestore } = await import("../../src/runtime/restore_preflight.ts");
    const { withDatabase } = await import("../helpers/pg.ts");
    const dirClient = {
      kind: "directory",
      path: "/nonexistent-x",
      exclude: [],
      one_file_system: false,
    };
    await assert.rejects(
      () =>
        preflightRestore({
          clientName: "files",
          client: dirClient as never,
          manifest: { kind: "directory", key: "k" } as never,
          target: null,
          replace: false,
          flush: true,
        }, "cli"),
      /--flush applies only to Redis restores; client files is of kind directory/,
    );
    await withDatabase(async (db, sql) => {
      await sql.unsafe("CREATE TABLE other (i int)");
      const req = {
        clientName: "db",
        client: { kind: "postgres", url: `postgres://postgres@127.0.0.1:5432/${db}` } as never,
        manifest: { kind: "postgres", key: "k" } as never,
        target: null,
        replace: false,
        flush: false,
      };
      await assert.rejects(
        () => preflightRestore(req, "api"),
        /is not empty: pass "replace": true/,
      );
      await preflightRestore({ ...req, tables: ["public.t2"] }, "api");
    });
  },
});

Deno.test({
  name:
    "directory: a client whose path is a symlink to a directory restores in place through the link",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const real = join(dir, "real");
      await makeTree(real);
      const link = join(dir, "linkdir");
      await Deno.symlink(real, link);
      const config = await writeConfig(dir, { clients: { ld: { kind: "directory", path: link } } });
      const key = JSON.parse((await cairn(["backup", "ld", "--json", "--config", config])).stdout)
        .result.key;
      await Deno.writeTextFile(join(real, "a.txt"), "changed");
      const r = await cairn(["restore", key, "--yes", "--json", "--config", config]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(await Deno.readTextFile(join(real, "a.txt")), "alpha\n");
      assert.ok((await Deno.lstat(link)).isSymlink, "the link stays a link");
    });
  },
});

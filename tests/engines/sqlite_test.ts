import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { readManifest } from "../../src/repository/manifest.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { run, testServices } from "../helpers/services.ts";

function seed(path: string): void {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(
    "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER, blob BLOB);",
  );
  db.exec(`CREATE TABLE "Odd ""Name""" (x)`);
  const ins = db.prepare("INSERT INTO a (v) VALUES (?)");
  for (let i = 0; i < 500; i++) ins.run(`row ${i}`);
  db.exec(`INSERT INTO "Odd ""Name""" VALUES (1), (2)`);
  db.close();
}

Deno.test("sqlite: a consistent online copy while another process writes in transactions", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "live.db");
    seed(path);
    // The writer keeps a and b the same size in every committed transaction.
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DatabaseSync } from "node:sqlite";
        const db = new DatabaseSync(${
          JSON.stringify(path)
        }); db.exec("PRAGMA busy_timeout = 10000");
        db.exec("DELETE FROM b"); db.exec("INSERT INTO b (a_id) SELECT id FROM a");
        console.log("ready");
        for (let i = 0; ; i++) { db.exec("BEGIN IMMEDIATE");
          db.prepare("INSERT INTO a (v) VALUES (?)").run("w" + i);
          db.prepare("INSERT INTO b (a_id, blob) VALUES (last_insert_rowid(), randomblob(2000))").run();
          db.exec("COMMIT"); }`,
      ],
      stdout: "piped",
    }).spawn();
    const reader = writer.stdout.getReader();
    await reader.read();
    const services = await testServices(dir, { live: { kind: "sqlite", path } });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const b = await run(services, { kind: "backup", client_name: "live" });
      assert.equal(b.status, "completed", b.error ?? "");
      const key = String(b.result!.key);
      const tables = (await readManifest(services.repository, key)).facts.tables as Record<
        string,
        number
      >;
      assert.ok(tables.a >= 500);
      assert.equal(tables.a, tables.b, "a snapshot sees whole transactions only");
      assert.equal(tables['Odd "Name"'], 2);
      assert.equal(b.result!.tables, 3);

      const v = await run(services, { kind: "verify", client_name: "live", key });
      assert.equal(v.status, "completed", v.error ?? "");
      assert.deepEqual((v.result!.checks as { tables: unknown }).tables, tables);

      const target = join(dir, "restored.db");
      const r = await run(services, {
        kind: "restore",
        client_name: "live",
        key,
        params: { target },
      });
      assert.equal(r.status, "completed", r.error ?? "");
      const db = new DatabaseSync(target, { readOnly: true });
      assert.equal((db.prepare("SELECT COUNT(*) AS n FROM a").get() as { n: number }).n, tables.a);
      assert.equal(
        (db.prepare("PRAGMA integrity_check").get() as Record<string, string>).integrity_check,
        "ok",
      );
      db.close();
    } finally {
      writer.kill("SIGKILL");
      await writer.status;
      reader.releaseLock();
      await writer.stdout.cancel().catch(() => {});
      await services.store.close();
    }
  });
});

Deno.test("sqlite: restore over the live path needs replace, and drops a stale WAL", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "app.db");
    seed(path);
    const services = await testServices(dir, { app: { kind: "sqlite", path } });
    try {
      const key = String((await run(services, { kind: "backup", client_name: "app" })).result!.key);
      const db = new DatabaseSync(path);
      db.exec("DELETE FROM a");
      db.close();
      const refused = await run(services, { kind: "restore", client_name: "app", key });
      assert.equal(refused.status, "failed");
      assert.match(refused.error!, /not empty/);
      await Deno.writeTextFile(path + "-wal", "stale junk");
      const ok = await run(services, {
        kind: "restore",
        client_name: "app",
        key,
        params: { replace: true },
      });
      assert.equal(ok.status, "completed", ok.error ?? "");
      const again = new DatabaseSync(path, { readOnly: true });
      assert.equal((again.prepare("SELECT COUNT(*) AS n FROM a").get() as { n: number }).n, 500);
      again.close();
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("sqlite: a missing or non-database source fails clearly", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      join(dir, "not.db"),
      "this is not sqlite at all, just text padding it out ".repeat(100),
    );
    const services = await testServices(dir, {
      missing: { kind: "sqlite", path: join(dir, "missing.db") },
      junk: { kind: "sqlite", path: join(dir, "not.db") },
    });
    try {
      const a = await run(services, { kind: "backup", client_name: "missing" });
      assert.equal(a.status, "failed");
      assert.match(a.error!, /SQLite database .*missing\.db of client missing does not exist/);
      const b = await run(services, { kind: "backup", client_name: "junk" });
      assert.equal(b.status, "failed");
      assert.match(b.error!, /not a SQLite database|not a database/);
    } finally {
      await services.store.close();
    }
  });
});

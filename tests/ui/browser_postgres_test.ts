// A PostgreSQL table-subset restore driven end to end in a real browser: a real daemon
// backs up a scratch database on the local server (127.0.0.1:5432, user postgres), both
// tables change, and the restore form brings back only one of them over the live database.
import assert from "node:assert/strict";
import { join } from "node:path";
import { hasChromium, launch, signIn, waitForRow } from "../helpers/browser.ts";
import { spawnDaemon } from "../helpers/daemon.ts";
import { PG_HOST, PG_PORT, tableDigest, withDatabase } from "../helpers/pg.ts";
import { withTempDir, writeConfig } from "../helpers/tmp.ts";

const KEY = "browser-postgres-admin-key-3c9b";

Deno.test({
  name:
    "ui in a real browser: restore only public.orders of a PostgreSQL backup (with replace); public.customers keeps its changes",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withDatabase(async (db, sql) => {
      await withTempDir(async (dir) => {
        await sql.unsafe(`
          CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);
          INSERT INTO orders VALUES (1, 'rope'), (2, 'tent'), (3, 'stove');
          CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
          INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');`);
        const ordersAtBackup = await tableDigest(sql, "public.orders");
        const url = `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}`;
        const config = await writeConfig(dir, {
          clients: { shop: { kind: "postgres", url } },
          server: { listen: "127.0.0.1:0", admin_key: KEY },
        });
        const daemon = await spawnDaemon(config, { adminKey: KEY });
        const context = await launch(join(dir, "profile"));
        const timer = setTimeout(() => daemon.stop("SIGKILL"), 180_000);
        try {
          const page = context.pages()[0] ?? await context.newPage();
          page.setDefaultTimeout(30_000);
          await signIn(page, daemon.url, KEY);

          await t.step("back up the database from its client page", async () => {
            await page.goto(`${daemon.url}/ui/clients/shop`);
            await page.getByRole("button", { name: "Back up now" }).click();
            await waitForRow(page, "completed");
          });

          // Both tables change after the backup.
          await sql.unsafe(`
            DELETE FROM orders WHERE id = 1; INSERT INTO orders VALUES (99, 'lantern');
            UPDATE customers SET name = 'Grace H.' WHERE id = 2; INSERT INTO customers VALUES (3, 'Linus');`);
          const ordersChanged = await tableDigest(sql, "public.orders");
          const customersChanged = await tableDigest(sql, "public.customers");
          assert.notEqual(ordersChanged, ordersAtBackup);

          await t.step(
            "restore only public.orders over the live database, confirming what is replaced",
            async () => {
              await page.goto(`${daemon.url}/ui/clients/shop`);
              await page.getByRole("link", { name: "Restore or delete…" }).first().click();
              await page.getByLabel(/^Only these tables/).fill("public.orders");
              await page.getByLabel("Replace the target database if it exists").check();
              await page.getByRole("button", { name: "Review restore…" }).click();
              assert.equal(await page.locator("h1").textContent(), "Confirm restore");
              const replaced = `the client's own database ${url}`;
              assert.equal(await page.locator("strong.replaced").textContent(), replaced);
              assert.deepEqual(await page.locator("main li").allTextContents(), [
                "tables: public.orders",
                "replace: true",
              ]);
              await page.getByRole("button", { name: `Restore and replace ${replaced}` }).click();
              assert.match((await page.getByRole("status").textContent())!, /Restore job queued/);
              await page.goto(`${daemon.url}/ui/jobs?kind=restore`);
              await waitForRow(page, "completed");
            },
          );

          await t.step("SQL: orders is as backed up; customers keeps its changes", async () => {
            assert.equal(await tableDigest(sql, "public.orders"), ordersAtBackup);
            assert.deepEqual(
              (await sql`SELECT id, item FROM orders ORDER BY id`).map((r) => [r.id, r.item]),
              [[1, "rope"], [2, "tent"], [3, "stove"]],
            );
            assert.equal(await tableDigest(sql, "public.customers"), customersChanged);
            assert.deepEqual(
              (await sql`SELECT id, name FROM customers ORDER BY id`).map((r) => [r.id, r.name]),
              [[1, "Ada"], [2, "Grace H."], [3, "Linus"]],
            );
          });
        } finally {
          clearTimeout(timer);
          await context.close().catch(() => {});
          await daemon.stop();
        }
      });
    });
  },
});

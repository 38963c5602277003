// Encrypted backups on the dashboard, in a real browser against a real daemon whose
// repository encrypts with age: the client page says whether this host can decrypt each
// backup, a restore works where it can, and the restore button is disabled where it cannot.
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { hasChromium, launch, readTree, signIn, waitForRow } from "../helpers/browser.ts";
import { json, spawnDaemon } from "../helpers/daemon.ts";
import { makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

const KEY = "browser-encryption-admin-key-7d1e";
const short = (r: string) => `${r.slice(0, 12)}…${r.slice(-6)}`;

Deno.test({
  name:
    "ui in a real browser: an encrypted backup says this host can decrypt it and restores; with another key in place, restore is disabled and says why",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withTempDir(async (dir) => {
      const source = join(dir, "source");
      await makeTree(source);
      const mine = await generateIdentity(), other = await generateIdentity();
      const mineR = await identityToRecipient(mine), otherR = await identityToRecipient(other);
      const keyFile = join(dir, "key.txt");
      await Deno.writeTextFile(keyFile, `# the host's key\n${mine}\n`);
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: source } },
        repository: { encryption: { recipients: [mineR], identity_file: keyFile } },
        server: { listen: "127.0.0.1:0", admin_key: KEY },
      });
      const daemon = await spawnDaemon(config, { adminKey: KEY });
      const context = await launch(join(dir, "profile"));
      const timer = setTimeout(() => daemon.stop("SIGKILL"), 180_000);
      try {
        const page = context.pages()[0] ?? await context.newPage();
        page.setDefaultTimeout(30_000);
        await signIn(page, daemon.url, KEY);
        const note = () => page.locator("tbody tr").first().locator("[data-encryption]");

        await t.step(
          "back up: the row says this host can decrypt it, as which recipient",
          async () => {
            await page.goto(`${daemon.url}/ui/clients/files`);
            await page.getByRole("button", { name: "Back up now" }).click();
            await waitForRow(page, "completed");
            await page.goto(`${daemon.url}/ui/clients/files`);
            assert.equal(await note().getAttribute("data-encryption"), "decryptable");
            assert.equal(
              await note().textContent(),
              `encrypted; this host can decrypt it (as ${short(mineR)})`,
            );
            assert.equal(await note().getAttribute("title"), mineR);
            const list = await json(await daemon.api("/admin/backups?client_name=files"));
            assert.match(list.data.backups[0].key, /\.tar\.zst\.age$/);
          },
        );

        await t.step("restore it into a new target: the bytes on disk match", async () => {
          const target = join(dir, "restored");
          await page.getByRole("link", { name: "Restore or delete…" }).first().click();
          await page.getByLabel("Target directory").fill(target);
          await page.getByRole("button", { name: "Review restore…" }).click();
          await page.getByRole("button", { name: `Restore and replace ${target}` }).click();
          assert.match((await page.getByRole("status").textContent())!, /Restore job queued/);
          await page.goto(`${daemon.url}/ui/jobs?kind=restore`);
          await waitForRow(page, "completed");
          assert.deepEqual(await readTree(target), await readTree(source));
        });

        await t.step(
          "another key put in place (no restart): recipients named, restore disabled with the reason",
          async () => {
            await Deno.writeTextFile(keyFile, `${other}\n`);
            await Deno.utime(keyFile, new Date(), new Date(Date.now() + 5_000));
            await page.goto(`${daemon.url}/ui/clients/files`);
            assert.equal(await note().getAttribute("data-encryption"), "foreign");
            assert.equal(
              await note().textContent(),
              `encrypted for ${short(mineR)}; this host holds none of them`,
            );
            await page.getByRole("link", { name: "Restore or delete…" }).first().click();
            const button = page.getByRole("button", { name: "Review restore…" });
            assert.equal(await button.isDisabled(), true);
            assert.equal(
              await page.locator("#restore-blocked").textContent(),
              `The backup is encrypted for ${short(mineR)}, and the identity file ${keyFile} ` +
                `opens only ${short(otherR)}: restore is impossible here.`,
            );
            // The reason is the button's description, for a screen reader too.
            assert.equal(await button.getAttribute("aria-describedby"), "restore-blocked");
            // Delete stays possible: it needs no key.
            assert.equal(
              await page.getByRole("button", { name: "Delete backup" }).isDisabled(),
              false,
            );
          },
        );
      } finally {
        clearTimeout(timer);
        await context.close().catch(() => {});
        await daemon.stop();
      }
    });
  },
});

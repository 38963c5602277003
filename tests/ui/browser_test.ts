// The dashboard in a real browser (Debian's chromium, driven by playwright-core) against
// a real daemon with real directory clients.
import assert from "node:assert/strict";
import { join } from "node:path";
import { hasChromium, launch, readTree, waitForRow } from "../helpers/browser.ts";
import { json, spawnDaemon } from "../helpers/daemon.ts";
import { makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

const KEY = "browser-test-admin-key-4f2a9c";

/** Where the README's screenshots go when CAIRN_UI_SCREENSHOTS=docs; a temp dir otherwise. */
const SHOTS = Deno.env.get("CAIRN_UI_SCREENSHOTS") === "docs"
  ? new URL("../../docs/screenshots/", import.meta.url).pathname
  : null;

Deno.test({
  name:
    "ui in a real browser: sign in, back up, verify, restore, requeue, schedule, sign out, cross-site refused",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withTempDir(async (dir) => {
      const source = join(dir, "source");
      const broken = join(dir, "broken");
      await makeTree(source);
      await Deno.mkdir(broken);
      // 256 MiB of written zeros (tar skips holes, so not sparse): seconds of work to
      // watch, and a tiny compressed artifact.
      const big = join(dir, "big");
      await Deno.mkdir(big);
      const file = await Deno.open(join(big, "zeros.bin"), { write: true, create: true });
      const chunk = new Uint8Array(8 * 1024 * 1024);
      for (let i = 0; i < 32; i++) await file.write(chunk);
      file.close();
      const config = await writeConfig(dir, {
        clients: {
          files: { kind: "directory", path: source },
          broken: { kind: "directory", path: broken },
          big: { kind: "directory", path: big },
        },
        server: { listen: "127.0.0.1:0", admin_key: KEY },
      });
      const daemon = await spawnDaemon(config, { adminKey: KEY });
      // Gone after start: its backups fail, which fills the dead-letter queue.
      await Deno.remove(broken);
      const context = await launch(join(dir, "profile"));
      const evil = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
        new Response(
          `<!DOCTYPE html><title>evil</title><form id="f" method="post" action="${daemon.url}/ui/dlq/requeue">` +
            `<input name="kind" value="backup"></form><script>document.getElementById("f").submit()</script>`,
          { headers: { "content-type": "text/html" } },
        ));
      const timer = setTimeout(() => daemon.stop("SIGKILL"), 240_000);
      try {
        const page = context.pages()[0] ?? await context.newPage();
        page.setDefaultTimeout(30_000);

        await t.step(
          "sign in: a wrong key is refused, the right one opens the overview",
          async () => {
            await page.goto(daemon.url + "/");
            assert.equal(new URL(page.url()).pathname, "/ui/login");
            await page.getByLabel("Admin key").fill("not-the-key");
            await page.getByRole("button", { name: "Sign in" }).click();
            assert.equal(await page.getByRole("alert").textContent(), "Wrong admin key");
            await page.getByLabel("Admin key").fill(KEY);
            await page.getByRole("button", { name: "Sign in" }).click();
            assert.equal(await page.locator("h1").textContent(), "Overview");
            assert.equal(await page.title(), "Overview · cairn");
            assert.equal(
              await page.locator('tr[data-client="files"] [data-health]').textContent(),
              "never",
            );
          },
        );

        await t.step(
          "start a backup and watch it complete on the jobs page, without a reload",
          async () => {
            await page.goto(`${daemon.url}/ui/clients/big`);
            await page.getByRole("button", { name: "Back up now" }).click();
            assert.equal(new URL(page.url()).pathname, "/ui/jobs");
            assert.match(
              (await page.getByRole("status").textContent())!,
              /Backup job queued: job \d+/,
            );
            // A marker in the page's JS state survives only if the page is never reloaded.
            await page.evaluate(() => ((globalThis as any).__sameDocument = true));
            const row = page.locator('tbody tr[id^="job-"]').first();
            const seen: string[] = [];
            for (let i = 0; i < 600; i++) {
              const status = await row.getAttribute("data-status");
              const progress = await row.locator("td.progress").textContent();
              seen.push(`${status}: ${progress}`);
              if (status === "completed") break;
              await new Promise((r) => setTimeout(r, 100));
            }
            assert.match(seen[0], /^(pending|running): /, "the page opened before the job ended");
            // Progress counts the artifact's bytes (compressed zeros: small), not the source's.
            assert.match(
              seen.at(-1)!,
              /^completed: 100 % · [\d.]+ [KMG]iB of [\d.]+ [KMG]iB · .*\/s · \d+ s$/,
            );
            const running = seen.filter((s) => s.startsWith("running: "));
            assert.ok(running.length > 0, `never saw it running: ${seen.join(" | ")}`);
            // Live while it runs: at least the elapsed time (bytes and rate once the worker
            // saves progress; progressText is pinned in pure_test.ts).
            for (const s of running) assert.match(s, /^running: (.* · )?\d+ (s|min \d+ s)$/);
            assert.equal(await page.evaluate(() => (globalThis as any).__sameDocument), true);
            if (SHOTS) await page.screenshot({ path: `${SHOTS}/jobs.png` });
          },
        );

        await t.step("back up the files client (for verify and restore)", async () => {
          await page.goto(`${daemon.url}/ui/clients/files`);
          await page.getByRole("button", { name: "Back up now" }).click();
          await waitForRow(page, "completed");
        });

        await t.step("verify it", async () => {
          await page.goto(`${daemon.url}/ui/clients/files`);
          if (SHOTS) await page.screenshot({ path: `${SHOTS}/client.png` });
          await page.getByRole("button", { name: "Verify" }).first().click();
          assert.match((await page.getByRole("status").textContent())!, /Verify job queued/);
          await waitForRow(page, "completed");
          const verify = await json(await daemon.api("/admin/backups/jobs?kind=verify"));
          assert.equal(verify.data.jobs[0].status, "completed");
        });

        await t.step(
          "restore a directory backup into a new target: the bytes on disk match",
          async () => {
            const target = join(dir, "restored");
            await page.goto(`${daemon.url}/ui/clients/files`);
            await page.getByRole("link", { name: "Restore or delete…" }).first().click();
            await page.getByLabel("Target directory").fill(target);
            await page.getByRole("button", { name: "Review restore…" }).click();
            assert.equal(await page.locator("h1").textContent(), "Confirm restore");
            assert.equal(await page.locator("strong.replaced").textContent(), target);
            await page.getByRole("button", { name: `Restore and replace ${target}` }).click();
            assert.match((await page.getByRole("status").textContent())!, /Restore job queued/);
            await page.goto(`${daemon.url}/ui/jobs?kind=restore`);
            await waitForRow(page, "completed");
            assert.deepEqual(await readTree(target), await readTree(source));
          },
        );

        await t.step("download a backup (bytes match its checksum), then delete it", async () => {
          await page.goto(`${daemon.url}/ui/clients/files`);
          const href = await page.getByRole("link", { name: "Download" }).first().getAttribute(
            "href",
          );
          const res = await page.request.get(daemon.url + href);
          assert.equal(res.status(), 200);
          const body = new Uint8Array(await res.body());
          const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
          assert.equal(
            Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
            res.headers()["x-checksum-sha256"],
          );
          assert.match(
            res.headers()["content-disposition"],
            /^attachment; filename=".*\.tar\.zst"$/,
          );
          await page.getByRole("link", { name: "Restore or delete…" }).first().click();
          await page.getByRole("button", { name: "Delete backup" }).click();
          // The required confirmation box stops the form until it is ticked.
          assert.equal(await page.locator("h1").textContent(), "Backup of files");
          await page.getByLabel("Delete this backup and its manifest for good").check();
          await page.getByRole("button", { name: "Delete backup" }).click();
          assert.equal(await page.getByRole("status").textContent(), "Backup deleted");
          assert.equal(await page.locator("h1").textContent(), "Client files");
          const list = await json(await daemon.api("/admin/backups?client_name=files"));
          assert.equal(list.data.backups.length, 0);
        });

        let failedId = 0;
        await t.step("requeue a dead-lettered job", async () => {
          await page.goto(`${daemon.url}/ui/clients/broken`);
          await page.getByRole("button", { name: "Back up now" }).click();
          await waitForRow(page, "failed");
          await page.goto(`${daemon.url}/ui/dlq`);
          const row = page.locator("tbody tr").first();
          failedId = Number(await row.locator("td").first().textContent());
          const before = (await json(await daemon.api(`/admin/backups/jobs/${failedId}`))).data;
          assert.match(await row.locator("pre").textContent() ?? "", /broken/);
          await row.getByRole("button", { name: "Requeue" }).click();
          assert.equal(await page.getByRole("status").textContent(), "Job requeued");
          // It ran again (and, the directory still missing, failed again): a new finish.
          for (let i = 0; i < 100; i++) {
            const now = (await json(await daemon.api(`/admin/backups/jobs/${failedId}`))).data;
            if (now.status === "failed" && now.finished_at !== before.finished_at) break;
            await new Promise((r) => setTimeout(r, 200));
            assert.ok(i < 99, "the requeued job never ran again");
          }
        });

        await t.step("create a schedule and see its preview", async () => {
          await page.goto(`${daemon.url}/ui/schedules`);
          const form = page.locator("#new-schedule");
          await form.getByLabel("Client").selectOption("files");
          await form.getByLabel("Time zone (IANA)").fill("Europe/Berlin");
          await form.getByLabel(/^Cron expression/).fill("0 3 * * *");
          const items = page.locator("#pv-new li");
          await items.nth(4).waitFor();
          assert.equal(await items.count(), 5);
          for (const text of await items.allTextContents()) {
            assert.match(text, /^\d{4}-\d\d-\d\d 03:00 \(Europe\/Berlin\)$/);
          }
          await form.getByLabel(/^Cron expression/).fill("0 3 * *");
          await page.locator("#pv-new .error").waitFor();
          assert.match((await page.locator("#pv-new").textContent())!, /got 4/);
          await form.getByLabel(/^Cron expression/).fill("0 3 * * *");
          await page.getByRole("button", { name: "Create schedule" }).click();
          assert.equal(await page.getByRole("status").textContent(), "Schedule created");
          assert.equal(await page.locator("section .preview li").count(), 5);
          const s = await json(await daemon.api("/admin/backups/schedules"));
          assert.equal(s.data.schedules[0].cron, "0 3 * * *");
          assert.equal(s.data.schedules[0].timezone, "Europe/Berlin");
          await page.goto(daemon.url + "/");
          if (SHOTS) await page.screenshot({ path: `${SHOTS}/overview.png` });
        });

        await t.step(
          "a job enqueued through the API appears on the open jobs page, filters respected",
          async () => {
            await page.goto(`${daemon.url}/ui/jobs?client=files`);
            await page.evaluate(() => ((globalThis as any).__sameDocument = true));
            const enqueue = async (client: string) =>
              (await json(
                await daemon.api("/admin/backups", {
                  method: "POST",
                  json: { client_name: client },
                }),
              )).data.job_id as number;
            // Another client's job first: the filter keeps it off this page.
            const other = await enqueue("broken");
            const mine = await enqueue("files");
            const row = page.locator(`#job-${mine}`);
            await row.waitFor({ timeout: 30_000 });
            assert.equal(await row.locator("td").nth(2).textContent(), "files");
            assert.equal(await page.locator(`#job-${other}`).count(), 0);
            // Newest first: the new row is the first job row, above the older ones.
            assert.equal(
              await page.locator('tbody tr[id^="job-"]').first().getAttribute("id"),
              `job-${mine}`,
            );
            // It keeps updating itself until it completes, still without a reload.
            await page.locator(`#job-${mine}[data-status="completed"]`).waitFor({
              timeout: 60_000,
            });
            assert.equal(await page.evaluate(() => (globalThis as any).__sameDocument), true);
            assert.equal(await page.locator("tr.empty").isVisible(), false);
            await page.goto(`${daemon.url}/ui/jobs?client=files&status=cancelled`);
            assert.equal(await page.locator("tr.empty").textContent(), "No jobs match");
            assert.equal(await page.locator("tr.empty").isVisible(), true);
          },
        );

        await t.step("phone width, keyboard and dark theme", async () => {
          await page.setViewportSize({ width: 375, height: 700 });
          for (const path of ["/", "/ui/jobs", "/ui/clients/files", "/ui/schedules", "/ui/dlq"]) {
            await page.goto(daemon.url + path);
            // Wide tables scroll inside their box; the page itself never scrolls sideways.
            const width = await page.evaluate<number>("document.documentElement.scrollWidth");
            assert.ok(width <= 375, `${path} is ${width}px wide at 375px`);
            // Every form field has a label.
            const unlabelled = await page.locator("input:not([type=hidden]), select, textarea")
              .evaluateAll((els) =>
                els.filter((e) => !(e as any).labels?.length).map((e) => e.outerHTML)
              );
            assert.deepEqual(unlabelled, [], path);
          }
          await page.setViewportSize({ width: 960, height: 600 });
          await page.goto(daemon.url + "/");
          await page.keyboard.press("Tab");
          assert.equal(
            await page.evaluate<string>("document.activeElement?.textContent"),
            "Overview",
          );
          await page.keyboard.press("Tab");
          await page.keyboard.press("Enter");
          await page.waitForURL(/\/ui\/jobs$/);
          const bg = () => page.evaluate<string>("getComputedStyle(document.body).backgroundColor");
          await page.emulateMedia({ colorScheme: "light" });
          assert.equal(await bg(), "rgb(255, 255, 255)");
          await page.emulateMedia({ colorScheme: "dark" });
          assert.equal(await bg(), "rgb(13, 17, 23)");
          await page.emulateMedia({ colorScheme: "light" });
        });

        await t.step("a cross-site form post is refused", async () => {
          const before = await json(await daemon.api(`/admin/backups/jobs/${failedId}`));
          const evilPage = await context.newPage();
          const answer = evilPage.waitForResponse((r) => r.url().endsWith("/ui/dlq/requeue"));
          await evilPage.goto(`http://localhost:${evil.addr.port}/`);
          const res = await answer;
          // SameSite=Strict keeps the cookie home (401); the headers check refuses it anyway.
          assert.ok([401, 403].includes(res.status()), `status ${res.status()}`);
          const after = await json(await daemon.api(`/admin/backups/jobs/${failedId}`));
          assert.equal(after.data.status, "failed");
          assert.equal(after.data.finished_at, before.data.finished_at, "nothing was requeued");
          await evilPage.close();
        });

        await t.step("sign out, and a stale cookie is refused", async () => {
          const [cookie] = await context.cookies(daemon.url);
          assert.equal(cookie.name, "cairn_session");
          assert.equal(cookie.httpOnly, true);
          assert.equal(cookie.sameSite, "Strict");
          await page.getByRole("button", { name: "Sign out" }).click();
          assert.equal(new URL(page.url()).pathname, "/ui/login");
          await context.addCookies([cookie]);
          await page.goto(`${daemon.url}/ui/jobs`);
          assert.equal(new URL(page.url()).pathname, "/ui/login", "the old cookie opens nothing");
          const direct = await fetch(`${daemon.url}/ui/jobs`, {
            headers: { cookie: `cairn_session=${cookie.value}` },
            redirect: "manual",
          });
          await direct.body?.cancel();
          assert.equal(direct.status, 303);
        });
      } finally {
        clearTimeout(timer);
        await context.close().catch(() => {});
        await evil.shutdown();
        await daemon.stop();
      }
    });
  },
});

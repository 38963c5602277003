import assert from "node:assert/strict";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { createApp } from "../../src/api/app.ts";
import { HostIdentityCache } from "../../src/ui/host_identities.ts";
import { makeTree, withTempDir } from "../helpers/tmp.ts";
import { run, testServices } from "../helpers/services.ts";
import type { Services } from "../../src/runtime/services.ts";

const KEY = "dashboard-test-key-0123456789";
const ORIGIN = "http://127.0.0.1:4052";

async function withApp(
  adminKey: string | undefined,
  fn: (app: ReturnType<typeof createApp>, services: Services) => Promise<void>,
) {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      db: { kind: "postgres", url: "postgres://app:very-secret-pw@127.0.0.1:5432/app" },
      files: { kind: "directory", path: dir },
    });
    services.config.server.admin_key = adminKey;
    try {
      await fn(
        createApp({ services, pool: null, scheduler: null, startedAt: Date.now() }),
        services,
      );
    } finally {
      await services.store.close();
    }
  });
}

function cookieOf(res: Response): string {
  const set = res.headers.get("set-cookie") ?? "";
  return set.split(";")[0];
}

async function signIn(app: ReturnType<typeof createApp>, key = KEY, base = ORIGIN) {
  return await app.request(`${base}/ui/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: base },
    body: new URLSearchParams({ key }),
  }, { remoteAddr: { hostname: "10.0.0.9" } });
}

function csrfOf(html: string): string {
  return /name="_csrf" value="([^"]+)"/.exec(html)![1];
}

Deno.test("ui auth: sign-in sets a strict HttpOnly session cookie; the API's bearer auth is unchanged", async () => {
  await withApp(KEY, async (app) => {
    const anon = await app.request(`${ORIGIN}/`);
    assert.equal(anon.status, 303);
    assert.equal(anon.headers.get("location"), "/ui/login");
    assert.equal((await app.request("/admin/clients")).status, 401, "API still needs the key");
    assert.equal(
      (await app.request("/admin/clients", { headers: { authorization: `Bearer ${KEY}` } })).status,
      200,
    );
    // A session cookie is not an API credential.
    const ok = await signIn(app);
    assert.equal(ok.status, 303);
    const set = ok.headers.get("set-cookie")!;
    assert.match(set, /^cairn_session=[A-Za-z0-9_-]{43};/);
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Max-Age=28800/);
    assert.doesNotMatch(set, /Secure/, "plain http: a Secure cookie would never come back");
    assert.equal(
      (await app.request("/admin/clients", { headers: { cookie: cookieOf(ok) } })).status,
      401,
    );
    const overview = await app.request(`${ORIGIN}/`, { headers: { cookie: cookieOf(ok) } });
    assert.equal(overview.status, 200);
    assert.match(await overview.text(), /<title>Overview · cairn<\/title>/);
    // Over TLS the cookie is Secure.
    const tls = await signIn(app, KEY, "https://cairn.example");
    assert.match(tls.headers.get("set-cookie")!, /Secure/);
    // Behind a TLS-terminating proxy: https as X-Forwarded-Proto says, for the cookie and
    // for the Origin check (the browser's Origin is https, the daemon's URL http).
    const proxied = await app.request("http://cairn.example/ui/login", {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: "https://cairn.example",
        "x-forwarded-proto": "https",
      },
      body: new URLSearchParams({ key: KEY }),
    });
    assert.equal(proxied.status, 303);
    assert.match(proxied.headers.get("set-cookie")!, /Secure/);
  });
});

Deno.test("ui auth: wrong keys are refused, and after 5 the address waits (429 with Retry-After)", async () => {
  await withApp(KEY, async (app) => {
    for (let i = 0; i < 5; i++) {
      const res = await signIn(app, "wrong");
      assert.equal(res.status, 401);
      assert.match(await res.text(), /Wrong admin key/);
      assert.equal(res.headers.get("set-cookie"), null);
    }
    const locked = await signIn(app, KEY);
    assert.equal(locked.status, 429, "even the right key waits");
    assert.equal(locked.headers.get("retry-after"), "900");
  });
});

Deno.test("ui csrf: a POST without the token, or from another site, is refused; with both it runs", async () => {
  await withApp(KEY, async (app, services) => {
    const cookie = cookieOf(await signIn(app));
    const html = await (await app.request(`${ORIGIN}/ui/dlq`, { headers: { cookie } })).text();
    const csrf = csrfOf(html);
    const post = (headers: Record<string, string>, body: Record<string, string>) =>
      app.request(`${ORIGIN}/ui/dlq/cleanup`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams(body),
      });
    const old = await services.store.enqueue({
      kind: "backup",
      client_name: "files",
      max_attempts: 1,
    });
    assert.equal((await post({}, { older_than_days: "0" })).status, 403, "no token");
    assert.equal((await post({}, { older_than_days: "0", _csrf: "x" + csrf })).status, 403);
    const cross = await post({ "sec-fetch-site": "cross-site", origin: "https://evil.example" }, {
      older_than_days: "0",
      _csrf: csrf,
    });
    assert.equal(cross.status, 403);
    assert.match(await cross.text(), /cross-site/);
    const good = await post({ "sec-fetch-site": "same-origin", origin: ORIGIN }, {
      older_than_days: "0",
      _csrf: csrf,
    });
    assert.equal(good.status, 303);
    assert.equal(good.headers.get("location"), "/ui/dlq");
    assert.ok(await services.store.get(old.id), "a pending job is no dead letter");
  });
});

Deno.test("ui auth: after sign-out the old cookie is refused", async () => {
  await withApp(KEY, async (app) => {
    const cookie = cookieOf(await signIn(app));
    const csrf = csrfOf(await (await app.request(`${ORIGIN}/`, { headers: { cookie } })).text());
    const out = await app.request(`${ORIGIN}/ui/logout`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie")!, /cairn_session=;.*Max-Age=0/);
    const stale = await app.request(`${ORIGIN}/ui/jobs`, { headers: { cookie } });
    assert.equal(stale.status, 303);
    assert.equal(stale.headers.get("location"), "/ui/login");
    const post = await app.request(`${ORIGIN}/ui/dlq/requeue`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    assert.equal(post.status, 401);
  });
});

Deno.test("ui without an admin key (loopback daemon): open like the API, still CSRF-checked", async () => {
  await withApp(undefined, async (app) => {
    const first = await app.request(`${ORIGIN}/`);
    assert.equal(first.status, 200);
    const cookie = cookieOf(first);
    assert.match(cookie, /^cairn_session=/);
    const html = await first.text();
    assert.doesNotMatch(html, /Sign out/);
    const noToken = await app.request(`${ORIGIN}/ui/dlq/requeue`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: "",
    });
    assert.equal(noToken.status, 403);
    assert.equal((await app.request(`${ORIGIN}/ui/login`)).status, 303);
  });
});

Deno.test("ui pages: secrets are redacted as in the API; every page has a title and one h1", async () => {
  await withApp(KEY, async (app, services) => {
    await services.store.enqueue({
      kind: "restore",
      client_name: "db",
      key: "backups/db/20261121T020000000Z-manual.dump",
      max_attempts: 1,
      params: { target: "postgres://app:***@127.0.0.1:5432/copy" },
    });
    const failed = await services.store.enqueue({
      kind: "backup",
      client_name: "db",
      max_attempts: 1,
    });
    const lease = { owner: "t", leaseMs: 60_000 };
    const claimed = (await services.store.claim(lease, { id: failed.id }))!;
    await services.store.fail(
      claimed.id,
      claimed.lease_token!,
      "pg_dump: connection to postgres://app:very-secret-pw@127.0.0.1:5432/app failed",
      { retryDelayMs: 0, permanent: true },
    );
    const cookie = cookieOf(await signIn(app));
    for (
      const [path, title] of [
        ["/", "Overview"],
        ["/ui/clients/db", "Client db"],
        ["/ui/jobs", "Jobs"],
        ["/ui/dlq", "Dead-letter queue"],
        ["/ui/schedules", "Schedules"],
        ["/ui/notifications", "Notifications"],
      ]
    ) {
      const res = await app.request(`${ORIGIN}${path}`, { headers: { cookie } });
      assert.equal(res.status, 200, path);
      const html = await res.text();
      assert.ok(!html.includes("very-secret-pw"), `${path} leaks the password`);
      assert.ok(html.includes(`<title>${title} · cairn</title>`), path);
      assert.equal(html.match(/<h1>/g)?.length, 1, path);
      assert.match(res.headers.get("content-security-policy")!, /script-src 'self'/);
      if (path === "/ui/dlq") {
        assert.match(html, /postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/app failed/);
      }
      if (path === "/ui/clients/db") assert.match(html, /postgres:\/\/app:\*\*\*@127/);
      if (path === "/ui/notifications") {
        assert.match(html, /Not configured. No channel is configured/);
      }
      if (path === "/") assert.match(html, /data-health="failing"/);
    }
    const htmx = await app.request(`${ORIGIN}/ui/assets/htmx.js`);
    assert.equal(htmx.status, 200);
    assert.match(await htmx.text(), /^var htmx=function/);
    const gz = await app.request(`${ORIGIN}/ui/assets/htmx.js`, {
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(gz.headers.get("content-encoding"), "gzip");
    const zipped = (await gz.arrayBuffer()).byteLength;
    assert.ok(zipped < 20_000, `htmx gzipped is ${zipped} bytes`);
  });
});

Deno.test("ui schedules: create, disable, edit; a bad cron is the API's message, nothing created", async () => {
  await withApp(KEY, async (app, services) => {
    const cookie = cookieOf(await signIn(app));
    const csrf = csrfOf(
      await (await app.request(`${ORIGIN}/ui/schedules`, { headers: { cookie } })).text(),
    );
    const post = async (path: string, body: Record<string, string>) => {
      const res = await app.request(`${ORIGIN}${path}`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
        body: new URLSearchParams({ _csrf: csrf, ...body }),
      });
      assert.equal(res.status, 303, path);
      const page = await (await app.request(`${ORIGIN}/ui/schedules`, { headers: { cookie } }))
        .text();
      return /role="(?:status|alert)">([^<]*)</.exec(page)?.[1];
    };
    const fields = {
      client_name: "files",
      cron: "0 3 * * *",
      timezone: "Europe/Berlin",
      label: "nightly",
      keep_last: "3",
      enabled: "true",
      kind: "verify",
      auto_prune: "true",
    };
    assert.match((await post("/ui/schedules", { ...fields, cron: "0 3 * *" }))!, /cron/);
    assert.equal((await services.store.listSchedules()).length, 0);
    assert.equal(await post("/ui/schedules", fields), "Schedule created");
    const [s] = await services.store.listSchedules();
    assert.deepEqual(
      [s.client_name, s.cron, s.timezone, s.label, s.enabled, s.retention, s.kind, s.auto_prune],
      ["files", "0 3 * * *", "Europe/Berlin", "nightly", true, { keep_last: 3 }, "verify", true],
    );
    assert.equal(await post(`/ui/schedules/${s.id}/toggle`, {}), "Schedule updated");
    assert.equal((await services.store.getSchedule(s.id))!.enabled, false);
    assert.equal((await services.store.getSchedule(s.id))!.next_run_at, null);
    assert.equal(
      await post(`/ui/schedules/${s.id}`, { ...fields, cron: "30 4 * * 1" }),
      "Schedule updated",
    );
    const edited = (await services.store.getSchedule(s.id))!;
    assert.equal(edited.cron, "30 4 * * 1");
    assert.equal(edited.enabled, true);
    const preview = await (await app.request(
      `${ORIGIN}/ui/schedules/preview?cron=${encodeURIComponent("0 3 * * *")}&timezone=Asia/Tokyo`,
      { headers: { cookie } },
    )).text();
    assert.equal(preview.match(/<li[^>]*>[^<]*03:00 \(Asia\/Tokyo\)<\/li>/g)?.length, 5);
    assert.equal(
      await post(`/ui/schedules/${s.id}/delete`, {}),
      "Schedule deleted; its jobs&#39; history is kept", // HTML-escaped, as every message is
    );
    assert.equal((await services.store.listSchedules()).length, 0);
  });
});

Deno.test("ui errors: an unknown client or backup is a page naming it, not a JSON envelope", async () => {
  await withApp(KEY, async (app) => {
    const cookie = cookieOf(await signIn(app));
    const client = await app.request(`${ORIGIN}/ui/clients/nope`, { headers: { cookie } });
    assert.equal(client.status, 400);
    assert.match(client.headers.get("content-type")!, /^text\/html/);
    assert.match(
      await client.text(),
      /Unknown client &quot;nope&quot;: configured clients are db, files/,
    );
    const backup = await app.request(
      `${ORIGIN}/ui/backup?key=${
        encodeURIComponent("backups/files/20261121T020000000Z-manual.tar.gz")
      }`,
      { headers: { cookie } },
    );
    assert.equal(backup.status, 404);
    assert.match(
      await backup.text(),
      /Backup not found: backups\/files\/20261121T020000000Z-manual\.tar\.gz/,
    );
  });
});

Deno.test("ui notifications: channels and deliveries come from GET /admin/notifications; no target or secret shown", async () => {
  await withTempDir(async (dir) => {
    const { parseConfig } = await import("../../src/config/load.ts");
    const { openServices } = await import("../../src/runtime/services.ts");
    const config = parseConfig(JSON.stringify({
      server: { admin_key: KEY },
      store: { kind: "sqlite", path: `${dir}/cairn.db` },
      repository: { kind: "fs", path: `${dir}/repo` },
      clients: { files: { kind: "directory", path: dir } },
      notifications: [{
        name: "ops",
        kind: "webhook",
        url: "http://127.0.0.1:9/hook",
        secret: "webhook-secret-value",
      }],
    }));
    const services = await openServices(config);
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const cookie = cookieOf(await signIn(app));
      const html = await (await app.request(`${ORIGIN}/ui/notifications`, { headers: { cookie } }))
        .text();
      assert.match(html, /<td>ops<\/td><td>webhook<\/td><td>job_failed, verify_failed/);
      assert.match(html, /pending 0, delivered 0, dead 0, failing 0/);
      assert.match(html, /<button type="submit">Send test<\/button>/);
      for (const secret of ["webhook-secret-value", "127.0.0.1:9"]) {
        assert.ok(!html.includes(secret), `${secret} shown`);
      }
      // In-process (no daemon notifier): the API's own refusal, shown as it words it.
      const res = await app.request(`${ORIGIN}/ui/notifications/test`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrfOf(html), channel: "ops" }),
      });
      assert.equal(res.status, 303);
      const after = await (await app.request(`${ORIGIN}/ui/notifications`, { headers: { cookie } }))
        .text();
      assert.match(after, /role="alert">Notifications are sent by the daemon; none runs here/);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("ui schedules: a config-owned schedule is shown read-only and the dashboard refuses to change it", async () => {
  await withApp(KEY, async (app, services) => {
    const s = await services.store.createSchedule({
      client_name: "files",
      cron: "0 2 * * *",
      timezone: "UTC",
      label: "from-config",
      enabled: true,
      retention: {},
      next_run_at: null,
      config_owned: true,
    });
    const cookie = cookieOf(await signIn(app));
    const html = await (await app.request(`${ORIGIN}/ui/schedules`, { headers: { cookie } }))
      .text();
    const section = html.slice(html.indexOf(`id="schedule-${s.id}"`));
    assert.match(section, /from the config \(read-only\)/);
    assert.doesNotMatch(section.slice(0, section.indexOf("</section>")), /Disable|Delete|Edit/);
    const res = await app.request(`${ORIGIN}/ui/schedules/${s.id}/toggle`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: csrfOf(html) }),
    });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /Schedule \d+ comes from the config file: change it there/);
    assert.equal((await services.store.getSchedule(s.id))!.enabled, true);
  });
});

Deno.test("ui encryption: the identity file is read once per version (mtime, size, inode), not per row or request", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "key.txt");
    const a = await generateIdentity(), b = await generateIdentity();
    await Deno.writeTextFile(path, `# created by age-keygen\n${a}\n`);
    const reads: string[] = [];
    const cache = new HostIdentityCache(async (p) => {
      reads.push(p);
      const { readHostRecipients } = await import("../../src/ui/host_identities.ts");
      return await readHostRecipients(p);
    });
    const first = await cache.get(path);
    assert.deepEqual(first, {
      identityFile: path,
      recipients: [await identityToRecipient(a)],
      problem: null,
    });
    assert.equal(await cache.get(path), first, "the same answer, not read again");
    assert.equal(reads.length, 1);
    // A new key put in place: another mtime (set apart explicitly: a coarse clock may not).
    await Deno.writeTextFile(path, `${a}\n${b}\n`);
    await Deno.utime(path, new Date(), new Date(Date.now() + 5_000));
    assert.deepEqual((await cache.get(path)).recipients, [
      await identityToRecipient(a),
      await identityToRecipient(b),
    ]);
    assert.equal(reads.length, 2);
    await Deno.writeTextFile(path, "AGE-SECRET-KEY-1NOTAKEY\n");
    await Deno.utime(path, new Date(), new Date(Date.now() + 10_000));
    const bad = await cache.get(path);
    assert.deepEqual(bad.recipients, []);
    assert.match(bad.problem!, new RegExp(`^The identity file ${path} holds a line that is not`));
    await Deno.remove(path);
    assert.deepEqual(await cache.get(path), {
      identityFile: path,
      recipients: [],
      problem: "it does not exist",
    });
    assert.deepEqual(await cache.get(undefined), {
      identityFile: null,
      recipients: [],
      problem: null,
    });
    assert.equal(reads.length, 3);
  });
});

Deno.test("ui encryption: each backup says whether this host can decrypt it; restore is disabled and refused where it cannot", async () => {
  await withTempDir(async (dir) => {
    const source = join(dir, "source");
    await makeTree(source);
    const services = await testServices(dir, { files: { kind: "directory", path: source } });
    try {
      const plainJob = await run(services, { kind: "backup", client_name: "files" });
      assert.equal(plainJob.status, "completed");
      const mine = await generateIdentity(), other = await generateIdentity();
      const mineR = await identityToRecipient(mine), otherR = await identityToRecipient(other);
      const keyFile = join(dir, "key.txt");
      await Deno.writeTextFile(keyFile, `${mine}\n`);
      services.config.repository.encryption = { recipients: [mineR], identity_file: keyFile };
      const sealedJob = await run(services, { kind: "backup", client_name: "files" });
      assert.equal(sealedJob.status, "completed");
      assert.match(sealedJob.key!, /\.tar\.zst\.age$/);
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const first = await app.request(`${ORIGIN}/ui/clients/files`);
      const cookie = cookieOf(first);
      const csrf = csrfOf(await first.text());
      const get = async (path: string) =>
        await (await app.request(`${ORIGIN}${path}`, { headers: { cookie } })).text();
      const notes = async () => {
        const html = await get("/ui/clients/files");
        return [...html.matchAll(/data-encryption="([a-z-]+)"[^>]*>([^<]*)</g)].map((m) => [
          m[1],
          m[2],
        ]);
      };
      const short = (r: string) => `${r.slice(0, 12)}…${r.slice(-6)}`;
      const backupPage = () => get(`/ui/backup?key=${encodeURIComponent(sealedJob.key!)}`);
      const restoreJobs = () => services.store.count({ kind: "restore" });

      // Newest first: the encrypted backup, then the one made before encryption.
      assert.deepEqual(await notes(), [
        ["decryptable", `encrypted; this host can decrypt it (as ${short(mineR)})`],
        ["plain", "not encrypted"],
      ]);
      assert.match(await backupPage(), /<button type="submit">Review restore…<\/button>/);

      // Another key put in place: seen on the next load (mtime changed), no restart.
      await Deno.writeTextFile(keyFile, `${other}\n`);
      await Deno.utime(keyFile, new Date(), new Date(Date.now() + 5_000));
      assert.deepEqual((await notes())[0], [
        "foreign",
        `encrypted for ${short(mineR)}; this host holds none of them`,
      ]);
      const page = await backupPage();
      assert.match(page, /<button type="submit" disabled="" aria-describedby="restore-blocked">/);
      assert.ok(
        page.includes(
          `The backup is encrypted for ${
            short(mineR)
          }, and the identity file ${keyFile} opens only ${
            short(otherR)
          }: restore is impossible here.`,
        ),
      );
      // The disabled button is a courtesy; the server refuses the form all the same.
      for (const path of ["/ui/restore/confirm", "/ui/restore"]) {
        const res = await app.request(`${ORIGIN}${path}`, {
          method: "POST",
          headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ _csrf: csrf, key: sealedJob.key!, target: join(dir, "t") }),
        });
        assert.equal(res.status, 303, path);
        assert.equal(
          res.headers.get("location"),
          `/ui/backup?key=${encodeURIComponent(sealedJob.key!)}`,
        );
        assert.match(await backupPage(), /role="alert">IDENTITY_MISSING: The backup is encrypted/);
      }
      assert.equal(await restoreJobs(), 0, "nothing was enqueued");

      // A write-only host: no identity_file at all.
      services.config.repository.encryption = { recipients: [mineR] };
      assert.deepEqual((await notes())[0], [
        "no-identity",
        "encrypted; this host has no identity (write-only host): restore impossible here; " +
        "identities are looked for in repository.encryption.identity_file, which is not set on this host",
      ]);
      // Configured, but the file is gone.
      services.config.repository.encryption = { recipients: [mineR], identity_file: keyFile };
      await Deno.remove(keyFile);
      assert.deepEqual((await notes())[0], [
        "identity-unreadable",
        "encrypted; this host cannot read its identity file: it does not exist",
      ]);
      // The plain backup restores anywhere: its button is never disabled.
      assert.match(
        await get(`/ui/backup?key=${encodeURIComponent(plainJob.key!)}`),
        /<button type="submit">Review restore…<\/button>/,
      );
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("ui jobs: the first page polls for newer jobs matching its filters; older pages do not", async () => {
  await withApp(KEY, async (app, services) => {
    const cookie = cookieOf(await signIn(app));
    const get = (path: string) => app.request(`${ORIGIN}${path}`, { headers: { cookie } });
    const enqueue = async (client: string, kind: "backup" | "verify" = "backup") =>
      (await services.store.enqueue({
        kind,
        client_name: client,
        key: kind === "verify" ? "backups/files/20261121T020000000Z-manual.tar.zst" : null,
        max_attempts: 1,
      })).id;
    const old = await enqueue("files");
    await enqueue("db");
    const html = await (await get("/ui/jobs?client=files&kind=backup")).text();
    const poll = (after: number) =>
      `<tr id="jobs-poll" hidden="" hx-get="/ui/jobs/rows?kind=backup&amp;client=files&amp;after=${after}" hx-trigger="every 2s" hx-swap="outerHTML"></tr>`;
    assert.ok(html.includes(poll(old)), html);
    // Nothing newer: 204, so htmx swaps nothing and the poller stays.
    const none = await get(`/ui/jobs/rows?kind=backup&client=files&after=${old}`);
    assert.equal(none.status, 204);
    // Newer jobs of another client or kind are not this page's.
    await enqueue("db");
    await enqueue("files", "verify");
    const a = await enqueue("files");
    const b = await enqueue("files");
    const rows = await get(`/ui/jobs/rows?kind=backup&client=files&after=${old}`);
    assert.equal(rows.status, 200);
    const body = await rows.text();
    assert.deepEqual([...body.matchAll(/<tr id="(job[^"]*)"/g)].map((m) => m[1]), [
      "jobs-poll",
      `job-${b}`,
      `job-${a}`,
    ]);
    assert.ok(body.startsWith(poll(b)), body);
    assert.equal((await get("/ui/jobs/rows?after=x")).status, 400);
    // An older page (a cursor) does not gain new jobs.
    const cursor = (await services.store.list({}, { limit: 1 })).next_cursor!;
    const older = await (await get(`/ui/jobs?cursor=${encodeURIComponent(cursor)}`)).text();
    assert.ok(!older.includes("jobs-poll"));
    assert.match(older, new RegExp(`id="job-${a}"`));
  });
});

Deno.test("ui jobs: a page filtered by status adds an older job that reaches the status later, once", async () => {
  await withApp(KEY, async (app, services) => {
    const cookie = cookieOf(await signIn(app));
    const get = (path: string) => app.request(`${ORIGIN}${path}`, { headers: { cookie } });
    const enqueue = async () =>
      (await services.store.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 }))
        .id;
    const older = await enqueue();
    const newer = await enqueue();
    const html = await (await get("/ui/jobs?status=cancelled")).text();
    const src = (text: string) =>
      /<tr id="jobs-poll" hidden="" hx-get="([^"]*)"/.exec(text)![1].replaceAll("&amp;", "&");
    let poll = src(html);
    assert.match(poll, /^\/ui\/jobs\/rows\?status=cancelled&after=0&since=\d+$/);
    assert.equal((await get(poll)).status, 204, "nothing is cancelled yet");
    // The newer job is cancelled first: it is added.
    await services.store.requestCancel(newer);
    let body = await (await get(poll)).text();
    assert.deepEqual([...body.matchAll(/<tr id="job-(\d+)"/g)].map((m) => Number(m[1])), [newer]);
    poll = src(body);
    assert.match(poll, new RegExp(`after=${newer}&since=\\d+&seen=${newer}$`));
    assert.equal((await get(poll)).status, 204, "a shown job is not added again");
    // Then the older one: its id is below `after`, and it is added all the same.
    await services.store.requestCancel(older);
    body = await (await get(poll)).text();
    assert.deepEqual([...body.matchAll(/<tr id="job-(\d+)"/g)].map((m) => Number(m[1])), [older]);
    poll = src(body);
    assert.match(poll, new RegExp(`seen=${newer}%2C${older}$`));
    assert.equal((await get(poll)).status, 204);
    assert.equal((await get(`${poll.replace(/seen=[^&]*/, "seen=1,x")}`)).status, 400);
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
// Test-only: imported by version here, not in deno.json, so the daemon never installs it.
// deno-lint-ignore no-import-prefix -- test-only: kept out of deno.json and deno.lock by design
import { SMTPServer } from "npm:smtp-server@^3.21.6";
import { ConfigSchema } from "../../src/config/schema.ts";
import { Notifier } from "../../src/notify/notifier.ts";
import type { Services } from "../../src/runtime/services.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { JobStore } from "../../src/store/store.ts";
import { startReceiver } from "../helpers/receiver.ts";
import { withTempDir } from "../helpers/tmp.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function withNotifier(
  notifications: unknown[],
  fn: (ctx: { store: JobStore; notifier: Notifier; services: Services }) => Promise<void>,
  clients: Record<string, unknown> = { web: { kind: "directory", path: "/nonexistent" } },
) {
  await withTempDir(async (dir) => {
    const config = ConfigSchema.parse({
      store: { path: join(dir, "cairn.db") },
      clients,
      notifications,
    });
    const store = await SqliteStore.open(config.store.path);
    const services = { config, store } as unknown as Services;
    const notifier = new Notifier(services, { startedAt: Date.now(), pollMs: 50 });
    try {
      await fn({ store, notifier, services });
    } finally {
      await notifier.stop();
      await store.close();
    }
  });
}

/** A backup job of `client` driven to its final state through the store. */
async function finish(store: JobStore, client: string, outcome: "ok" | "fail") {
  const job = await store.enqueue({ kind: "backup", client_name: client, max_attempts: 1 });
  const claimed = (await store.claim({ owner: "t", leaseMs: 60_000 }, { id: job.id }))!;
  return outcome === "ok"
    ? await store.complete(claimed.id, claimed.lease_token!, {})
    : await store.fail(claimed.id, claimed.lease_token!, "disk on fire", { retryDelayMs: 0 });
}

Deno.test({
  name: "notifier: a final failure reaches a webhook once, signed, retried after HTTP 500",
  ...opts,
}, async () => {
  const rx = startReceiver();
  rx.respond = (n) => (n === 1 ? 500 : 200);
  try {
    await withNotifier([{
      kind: "webhook",
      name: "hook",
      url: rx.url + "/hook",
      secret: "whsec-123",
      retry_backoff_ms: 100,
    }], async ({ store, notifier }) => {
      notifier.start();
      const failed = await finish(store, "web", "fail");
      await notifier.jobSettled(failed);
      await notifier.jobSettled(failed); // a second report of one failure is not a second event
      await notifier.scan();
      await rx.waitFor(2);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(rx.received.length, 2, "one failed attempt, one delivery");
      const [first, second] = rx.received;
      assert.equal(first.headers["x-cairn-delivery"], second.headers["x-cairn-delivery"]);
      assert.equal(second.status, 200);
      const body = JSON.parse(second.body);
      assert.equal(body.event, "job_failed");
      assert.equal(body.job.id, failed.id);
      assert.equal(body.client, "web");
      const { createHmac } = await import("node:crypto");
      assert.equal(
        second.headers["x-cairn-signature"],
        "sha256=" + createHmac("sha256", "whsec-123").update(second.body).digest("hex"),
      );
      assert.ok(!second.body.includes("whsec-123"));
      const [d] = await store.listDeliveries({}, 10);
      assert.deepEqual([d.status, d.attempts, d.last_error], ["delivered", 2, "HTTP 500 nope"]);
    });
  } finally {
    await rx.close();
  }
});

Deno.test({
  name: "notifier: a channel that keeps failing ends dead and shows as failing until then",
  ...opts,
}, async () => {
  const rx = startReceiver();
  rx.respond = () => 503;
  try {
    await withNotifier([{
      kind: "slack",
      name: "chat",
      url: rx.url + "/slack",
      retry_backoff_ms: 50,
      max_attempts: 3,
    }], async ({ store, notifier }) => {
      notifier.start();
      await notifier.jobSettled(await finish(store, "web", "fail"));
      await rx.waitFor(1);
      const counts = await store.deliveryCounts();
      assert.ok(counts.chat.failing + counts.chat.dead === 1, JSON.stringify(counts));
      await rx.waitFor(3);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(rx.received.length, 3);
      assert.deepEqual(await store.deliveryCounts(), {
        chat: { pending: 0, delivered: 0, dead: 1, failing: 0 },
      });
      assert.match(rx.received[0].body, /"text":"\*cairn: job failed \(web\)\*/);
    });
  } finally {
    await rx.close();
  }
});

Deno.test({
  name: "notifier: recovery, opt-in success, healthchecks pings and client filters",
  ...opts,
}, async () => {
  const rx = startReceiver();
  try {
    await withNotifier([
      {
        kind: "webhook",
        name: "all",
        url: rx.url + "/all",
        events: ["job_succeeded", "client_recovered", "job_failed"],
      },
      { kind: "webhook", name: "db-only", url: rx.url + "/db", clients: ["db"] },
      { kind: "healthchecks", name: "hc", urls: { web: rx.url + "/ping/web" } },
    ], async ({ store, notifier }) => {
      notifier.start();
      const ok1 = await finish(store, "web", "ok");
      await notifier.jobSettled(ok1);
      const bad = await finish(store, "web", "fail");
      await notifier.jobSettled(bad);
      const started = await store.enqueue({ kind: "backup", client_name: "web", max_attempts: 1 });
      const claimed = (await store.claim({ owner: "t", leaseMs: 60_000 }, { id: started.id }))!;
      await notifier.jobStarted(claimed);
      const ok2 = await store.complete(claimed.id, claimed.lease_token!, {});
      await notifier.jobSettled(ok2);
      await notifier.scan(); // re-detects everything: nothing new
      await rx.waitFor(8);
      await new Promise((r) => setTimeout(r, 300));
      const seen = rx.received.map((r) =>
        r.path + " " + (r.path.startsWith("/ping") ? "" : JSON.parse(r.body).event)
      ).sort();
      assert.deepEqual(seen, [
        "/all client_recovered",
        "/all job_failed",
        "/all job_succeeded",
        "/all job_succeeded",
        "/ping/web ",
        "/ping/web ",
        "/ping/web/fail ",
        "/ping/web/start ",
      ]);
      const recovered = rx.received.find((r) => r.body.includes("client_recovered"))!;
      assert.equal(JSON.parse(recovered.body).job.id, ok2.id);
    }, { web: { kind: "directory", path: "/x" }, db: { kind: "sqlite", path: "/y" } });
  } finally {
    await rx.close();
  }
});

Deno.test(
  { name: "notifier: an overdue client is reported once per episode", ...opts },
  async () => {
    const rx = startReceiver();
    try {
      await withNotifier(
        [{ kind: "ntfy", name: "phone", url: rx.url + "/backups", token: "tk_secret" }],
        async ({ store, notifier }) => {
          const ok = await finish(store, "web", "ok");
          notifier.start();
          await notifier.scan(ok.finished_at! + 61 * 60_000);
          await notifier.scan(ok.finished_at! + 62 * 60_000);
          await rx.waitFor(1);
          await new Promise((r) => setTimeout(r, 200));
          assert.equal(rx.received.length, 1);
          const [r] = rx.received;
          assert.equal(r.headers.title, "cairn: backup overdue (web)");
          assert.equal(r.headers.authorization, "Bearer tk_secret");
          assert.match(r.body, /^web is overdue: no successful backup since .* \(limit 1 h\)$/);
          assert.equal(
            (await store.listDeliveries({}, 10))[0].dedupe_key,
            `backup_overdue:web:${ok.id}`,
          );
          assert.ok(!JSON.stringify(await store.listDeliveries({}, 10)).includes("tk_secret"));
        },
        { web: { kind: "directory", path: "/x", max_age: "60m" } },
      );
    } finally {
      await rx.close();
    }
  },
);

Deno.test(
  { name: "notifier: email over SMTP with nodemailer, to a local SMTP sink", ...opts },
  async () => {
    const mails: Array<{ from: string; to: string[]; data: string; user?: string }> = [];
    const server = new SMTPServer({
      disabledCommands: ["STARTTLS"],
      authOptional: true,
      allowInsecureAuth: true,
      onAuth(auth, _session, cb) {
        if (auth.username === "cairn" && auth.password === "smtp-pass-9") {
          cb(null, { user: "cairn" });
        } else cb(new Error("bad credentials"));
      },
      onData(stream, session, cb) {
        let data = "";
        stream.on("data", (c: Uint8Array) => (data += new TextDecoder().decode(c)));
        stream.on("end", () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
            data,
            user: session.user as string | undefined,
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.server.address() as { port: number }).port;
    try {
      await withNotifier([{
        kind: "email",
        name: "mail",
        host: "127.0.0.1",
        port,
        user: "cairn",
        password: "smtp-pass-9",
        from: "cairn@example.test",
        to: ["ops@example.test"],
      }], async ({ store, notifier }) => {
        notifier.start();
        const d = await notifier.test("mail");
        assert.equal(d.status, "delivered", d.last_error ?? "");
        await notifier.jobSettled(await finish(store, "web", "fail"));
        const until = Date.now() + 10_000;
        while (mails.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        assert.equal(mails.length, 2);
        assert.equal(mails[1].from, "cairn@example.test");
        assert.deepEqual(mails[1].to, ["ops@example.test"]);
        assert.equal(mails[1].user, "cairn");
        assert.match(mails[1].data, /Subject: cairn: job failed \(web\)/);
        assert.match(mails[1].data, /failed after 1 attempt: disk on fire/);
        assert.ok(!mails.some((m) => m.data.includes("smtp-pass-9")));
      });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  },
);

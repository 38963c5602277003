import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { Notifier } from "../../src/notify/notifier.ts";
import { openServices } from "../../src/runtime/services.ts";
import { startReceiver } from "../helpers/receiver.ts";
import { withTempDir } from "../helpers/tmp.ts";

Deno.test({
  name:
    "api: POST /admin/notifications/test sends to one channel; GET lists deliveries, no secrets",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rx = startReceiver();
  // A port nothing listens on: bind, note it, close.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  configureLog({ to: () => {} });
  try {
    await withTempDir(async (dir) => {
      const slackUrl = `${rx.url}/services/T000/B000/slack-token-xyz`;
      const config = parseConfig(JSON.stringify({
        store: { kind: "sqlite", path: join(dir, "cairn.db") },
        repository: { kind: "fs", path: join(dir, "repo") },
        notifications: [
          { kind: "slack", name: "chat", url: slackUrl },
          {
            kind: "webhook",
            name: "down",
            url: `http://127.0.0.1:${deadPort}/x`,
            timeout_ms: 2000,
          },
        ],
      }));
      const services = await openServices(config);
      const notifier = new Notifier(services, { startedAt: Date.now(), pollMs: 50 });
      notifier.start();
      const app = createApp({
        services,
        pool: null,
        scheduler: null,
        startedAt: Date.now(),
        notifier,
      });
      try {
        const post = (json: unknown) =>
          app.request("/admin/notifications/test", {
            method: "POST",
            body: JSON.stringify(json),
            headers: { "content-type": "application/json" },
          });
        const ok = await post({ channel: "chat" });
        assert.equal(ok.status, 200);
        const okBody = await ok.json();
        assert.equal(okBody.data.delivered, true);
        assert.equal(okBody.message, "Test notification delivered to chat");
        assert.equal(rx.received.length, 1);
        assert.equal(rx.received[0].path, "/services/T000/B000/slack-token-xyz");
        assert.match(JSON.parse(rx.received[0].body).text, /this channel works/);

        const down = await (await post({ channel: "down" })).json();
        assert.equal(down.data.delivered, false);
        assert.equal(down.data.delivery.status, "pending");
        assert.equal(down.data.delivery.attempts, 1);
        assert.match(
          down.message,
          /^Test notification to down failed \(request failed: .*\); it will be retried$/,
        );

        const unknown = await post({ channel: "nope" });
        assert.equal(unknown.status, 400);
        const u = await unknown.json();
        assert.equal(u.code, "VALIDATION_FAILED");
        assert.equal(
          u.message,
          'Unknown notification channel "nope": configured channels are chat, down',
        );

        const list = await app.request("/admin/notifications?limit=10");
        assert.equal(list.status, 200);
        const text = await list.text();
        assert.ok(!text.includes("slack-token-xyz"), "the Slack URL is a credential");
        const data = JSON.parse(text).data;
        assert.deepEqual(data.channels.map((c: any) => [c.name, c.kind, c.deliveries]), [
          ["chat", "slack", { pending: 0, delivered: 1, dead: 0, failing: 0 }],
          ["down", "webhook", { pending: 1, delivered: 0, dead: 0, failing: 1 }],
        ]);
        assert.deepEqual(data.deliveries.map((d: any) => [d.channel, d.event, d.status]), [
          ["down", "test", "pending"],
          ["chat", "test", "delivered"],
        ]);
        const bad = await app.request("/admin/notifications?status=lost");
        assert.equal(bad.status, 400);
      } finally {
        await notifier.stop();
        await services.store.close();
      }
    });
  } finally {
    await rx.close();
  }
});

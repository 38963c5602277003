import assert from "node:assert/strict";
import { join } from "node:path";
import { json, type RunningDaemon, spawnDaemon, waitFor, waitForJob } from "../helpers/daemon.ts";
import { startReceiver } from "../helpers/receiver.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { promtoolCheck } from "../helpers/promtool.ts";

const KEY = "e2e-admin-key-0123456789";
const SECRET = "whsec-e2e-secret";

async function backup(d: RunningDaemon, client: string): Promise<number> {
  const res = await d.api("/admin/backups", { method: "POST", json: { client_name: client } });
  assert.equal(res.status, 202);
  return (await json(res)).data.job_id;
}

Deno.test({
  name:
    "notify e2e: a final failure reaches the webhook exactly once, across a daemon restart mid-retries",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rx = startReceiver();
  // The first two attempts of every delivery are refused: one before the restart, one after.
  const attemptsById = new Map<string, number>();
  rx.respond = (_n, req) => {
    const id = req.headers["x-cairn-delivery"];
    const n = (attemptsById.get(id) ?? 0) + 1;
    attemptsById.set(id, n);
    return n <= 2 ? 500 : 200;
  };
  let d: RunningDaemon | null = null;
  try {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      await Deno.writeTextFile(join(src, "a.txt"), "hello");
      const config = join(dir, "cairn.yaml");
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          server: { listen: "127.0.0.1:0", admin_key: KEY },
          store: { kind: "sqlite", path: join(dir, "cairn.db") },
          repository: { kind: "fs", path: join(dir, "repo") },
          backup: { worker_max_attempts: 3, execution_worker_poll_ms: 250 },
          clients: {
            good: { kind: "directory", path: src },
            bad: { kind: "directory", path: join(dir, "nowhere") },
          },
          notifications: [{
            kind: "webhook",
            name: "ops",
            url: rx.url + "/cairn",
            secret: SECRET,
            // Long enough that the first retry falls after the restart.
            retry_backoff_ms: 2500,
          }],
        }),
      );
      d = await spawnDaemon(config, { adminKey: KEY });
      const good = await waitForJob(d, await backup(d, "good"), ["completed", "failed"]);
      assert.equal(good.status, "completed");
      const failed = await waitForJob(d, await backup(d, "bad"), ["completed", "failed"]);
      assert.equal(failed.status, "failed", "a missing directory is dead-lettered at once");
      await rx.waitFor(1);
      assert.equal(rx.received[0].status, 500);
      // Restart while the delivery waits for its retry.
      assert.equal(await d.stop("SIGTERM"), 0);
      d = await spawnDaemon(config, { adminKey: KEY });
      await rx.waitFor(3, 30_000);
      // A second final failure is a second event.
      const again = await waitForJob(d, await backup(d, "bad"), ["completed", "failed"]);
      assert.equal(again.status, "failed");
      await waitFor(
        () => Promise.resolve(rx.received.filter((r) => r.status === 200).length === 2),
        "the second failure's delivery",
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1500)); // nothing more arrives
      const accepted = rx.received.filter((r) => r.status === 200);
      assert.equal(accepted.length, 2, "exactly once per final failure");
      const bodies = accepted.map((r) => JSON.parse(r.body));
      assert.deepEqual(bodies.map((b) => [b.event, b.client, b.job.id]), [
        ["job_failed", "bad", failed.id],
        ["job_failed", "bad", again.id],
      ]);
      assert.equal(rx.received.length, 6, "each delivery: two refused, then accepted");
      const firstId = accepted[0].headers["x-cairn-delivery"];
      assert.equal(
        rx.received.filter((r) => r.headers["x-cairn-delivery"] === firstId).length,
        3,
        "the retries after the restart carry the same delivery id",
      );
      for (const r of rx.received) {
        assert.ok(!r.body.includes(SECRET) && !r.body.includes(KEY), "no secret in a payload");
      }
      const list = (await json(await d.api("/admin/notifications"))).data;
      assert.deepEqual(list.channels, [{
        name: "ops",
        kind: "webhook",
        events: ["job_failed", "verify_failed", "backup_overdue", "client_recovered"],
        deliveries: { pending: 0, delivered: 2, dead: 0, failing: 0 },
      }]);
      assert.deepEqual(
        list.deliveries.map((x: any) => [x.status, x.attempts, x.last_error]),
        [["delivered", 3, "HTTP 500 nope"], ["delivered", 3, "HTTP 500 nope"]],
      );
      // The scrape shows the failures and the last success.
      const scrape = await d.api("/metrics");
      assert.equal(scrape.status, 200);
      const text = await scrape.text();
      const lines = text.split("\n");
      for (
        const line of [
          `cairn_last_success_timestamp_seconds{client="good"} ${
            Date.parse(good.finished_at) / 1000
          }`,
          `cairn_jobs{kind="backup",status="failed"} 2`,
          `cairn_jobs{kind="backup",status="completed"} 1`,
          `cairn_dlq_jobs 2`,
          `cairn_notification_deliveries{channel="ops",status="delivered"} 2`,
          `cairn_notification_deliveries_failing{channel="ops"} 0`,
          // This daemon ran the second failure only (histograms count since start).
          `cairn_job_duration_seconds_count{kind="backup",client="bad",status="failed"} 1`,
        ]
      ) assert.ok(lines.includes(line), `missing ${line}\n${text}`);
      assert.ok(!text.includes('cairn_last_success_timestamp_seconds{client="bad"}'));
      const check = await promtoolCheck(text);
      assert.equal(check.code, 0, check.out);
    });
  } finally {
    const running = d as RunningDaemon | null;
    if (running) await running.stop();
    await rx.close();
  }
});

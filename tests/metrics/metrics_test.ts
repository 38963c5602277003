import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { openServices } from "../../src/runtime/services.ts";
import type { JobStore } from "../../src/store/store.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { promtoolCheck } from "../helpers/promtool.ts";

const ADMIN = "admin-key-0123456789";
const TOKEN = "metrics-token-0123456789";

async function finish(
  store: JobStore,
  kind: "backup" | "verify",
  client: string,
  ok: boolean,
  result: Record<string, unknown> = {},
) {
  const job = await store.enqueue({ kind, client_name: client, max_attempts: 1 });
  const c = (await store.claim({ owner: "t", leaseMs: 60_000 }, { id: job.id }))!;
  return ok
    ? await store.complete(c.id, c.lease_token!, result)
    : await store.fail(c.id, c.lease_token!, "boom", { retryDelayMs: 0 });
}

Deno.test("metrics: GET /metrics is valid exposition text with the issue's metrics, by token", async () => {
  configureLog({ to: () => {} });
  await withTempDir(async (dir) => {
    const config = parseConfig(JSON.stringify({
      server: { admin_key: ADMIN, metrics_token: TOKEN },
      store: { kind: "sqlite", path: join(dir, "cairn.db") },
      repository: { kind: "fs", path: join(dir, "repo") },
      clients: {
        web: { kind: "directory", path: dir },
        db: { kind: "sqlite", path: join(dir, "x.db") },
      },
      notifications: [{ kind: "slack", name: "chat", url: "http://127.0.0.1:1/x" }],
    }));
    const services = await openServices(config);
    const metrics = new Metrics();
    const app = createApp({
      services,
      pool: null,
      scheduler: null,
      startedAt: Date.now(),
      metrics,
    });
    try {
      const { store } = services;
      const ok = await finish(store, "backup", "web", true, { size_bytes: 12345 });
      await finish(store, "backup", "db", false);
      await finish(store, "verify", "web", true);
      await finish(store, "verify", "db", false);
      await store.enqueue({ kind: "backup", client_name: "web", max_attempts: 1 });
      await metrics.observeJob(ok);
      const s = await store.createSchedule({
        client_name: "web",
        cron: "0 3 * * *",
        timezone: "UTC",
        label: "nightly",
        enabled: true,
        retention: {},
        next_run_at: Date.UTC(2030, 0, 1, 3),
      });
      const d = await store.enqueueDelivery({
        channel: "chat",
        event: "job_failed",
        dedupe_key: "k",
        payload: {},
        max_attempts: 5,
      });
      await store.settleDelivery(d.delivery.id, { ok: false, error: "x", retryDelayMs: 1 });

      const get = (auth?: string) =>
        app.request("/metrics", { headers: auth ? { authorization: `Bearer ${auth}` } : {} });
      assert.equal((await get()).status, 401);
      assert.equal((await get("wrong-token-0123456789")).status, 401);
      assert.equal((await get(ADMIN)).status, 200, "the admin key reads metrics too");
      const res = await get(TOKEN);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      const text = await res.text();
      const lines = text.split("\n");
      const has = (line: string) => assert.ok(lines.includes(line), `missing ${line}\n${text}`);
      has(`cairn_last_success_timestamp_seconds{client="web"} ${ok.finished_at! / 1000}`);
      has(`cairn_last_success_size_bytes{client="web"} 12345`);
      has(
        `cairn_last_success_duration_seconds{client="web"} ${
          (ok.finished_at! - ok.started_at!) / 1000
        }`,
      );
      has(`cairn_last_verify_passed{client="web"} 1`);
      has(`cairn_last_verify_passed{client="db"} 0`);
      has(`cairn_jobs{kind="backup",status="completed"} 1`);
      has(`cairn_jobs{kind="backup",status="failed"} 1`);
      has(`cairn_jobs{kind="backup",status="pending"} 1`);
      has(`cairn_dlq_jobs 2`);
      has(`cairn_client_health{client="web",health="ok"} 1`);
      has(`cairn_client_health{client="web",health="failing"} 0`);
      has(`cairn_client_health{client="db",health="failing"} 1`);
      has(`cairn_queue_depth 1`);
      has(`cairn_jobs_running 0`);
      has(
        `cairn_schedule_next_run_timestamp_seconds{schedule_id="${s.id}",client="web",label="nightly"} ${
          Date.UTC(2030, 0, 1, 3) / 1000
        }`,
      );
      has(`cairn_notification_deliveries{channel="chat",status="pending"} 1`);
      has(`cairn_notification_deliveries_failing{channel="chat"} 1`);
      has(`cairn_job_duration_seconds_count{kind="backup",client="web",status="completed"} 1`);
      assert.ok(
        !lines.some((l) => l.startsWith('cairn_last_success_timestamp_seconds{client="db"}')),
      );
      const check = await promtoolCheck(text);
      assert.equal(check.code, 0, check.out);
      // The metrics token opens nothing else.
      const other = await app.request("/admin/status", {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(other.status, 401);
    } finally {
      await services.store.close();
    }
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { openServices } from "../../src/runtime/services.ts";
import { clientHealth, type HealthInput } from "../../src/status/health.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { JobStore } from "../../src/store/store.ts";
import { cairn, withTempDir } from "../helpers/tmp.ts";

const H = 3_600_000;
const NOW = Date.UTC(2026, 10, 30, 12);

Deno.test("status health: every combination of success, failure, verification and age", () => {
  const base: HealthInput = {
    now: NOW,
    lastSuccessAt: null,
    lastFailureAt: null,
    verification: null,
    maxAgeMs: null,
    since: NOW - 100 * H,
  };
  const cases: Array<[Partial<HealthInput>, string]> = [
    [{}, "never"],
    [{ maxAgeMs: H }, "never"],
    [{ lastFailureAt: NOW - H }, "failing"],
    [{ lastSuccessAt: NOW - H }, "ok"],
    [{ lastSuccessAt: NOW - H, lastFailureAt: NOW - 2 * H }, "ok"],
    [{ lastSuccessAt: NOW - 2 * H, lastFailureAt: NOW - H }, "failing"],
    [{ lastSuccessAt: NOW - H, verification: "passed" }, "ok"],
    [{ lastSuccessAt: NOW - H, verification: "failed" }, "failing"],
    [{ lastSuccessAt: NOW - 3 * H, maxAgeMs: 2 * H }, "overdue"],
    [{ lastSuccessAt: NOW - 2 * H, maxAgeMs: 2 * H }, "ok"],
    [{ lastSuccessAt: NOW - 3 * H, maxAgeMs: 2 * H, verification: "failed" }, "failing"],
    [{ lastSuccessAt: NOW - 3 * H, maxAgeMs: 2 * H, lastFailureAt: NOW - H }, "failing"],
    [{ lastSuccessAt: NOW - 30 * H, maxAgeMs: null }, "ok"],
  ];
  for (const [over, want] of cases) {
    assert.equal(clientHealth({ ...base, ...over }), want, JSON.stringify(over));
  }
});

async function finish(
  store: JobStore,
  kind: "backup" | "verify",
  client: string,
  ok: boolean,
  key?: string,
) {
  const job = await store.enqueue({ kind, client_name: client, max_attempts: 1, key });
  const c = (await store.claim({ owner: "t", leaseMs: 60_000 }, { id: job.id }))!;
  return ok
    ? await store.complete(c.id, c.lease_token!, {})
    : await store.fail(c.id, c.lease_token!, "boom", { retryDelayMs: 0 });
}

Deno.test("status: cairn status and GET /admin/status answer per client; exit 1 unless all ok", async () => {
  configureLog({ to: () => {} });
  await withTempDir(async (dir) => {
    const configText = JSON.stringify({
      store: { kind: "sqlite", path: join(dir, "cairn.db") },
      repository: { kind: "fs", path: join(dir, "repo") },
      clients: {
        fine: { kind: "directory", path: dir, max_age: "26h" },
        broken: { kind: "directory", path: dir },
        fresh: { kind: "directory", path: dir },
      },
    });
    const configPath = join(dir, "cairn.yaml");
    await Deno.writeTextFile(configPath, configText);
    const store = await SqliteStore.open(join(dir, "cairn.db"));
    const fine = await finish(store, "backup", "fine", true, "backups/fine/k1.tar.gz");
    const verified = await finish(store, "verify", "fine", true, "backups/fine/k1.tar.gz");
    await finish(store, "backup", "broken", true, "backups/broken/k2.tar.gz");
    const broke = await finish(store, "backup", "broken", false);
    const schedule = await store.createSchedule({
      client_name: "fine",
      cron: "0 3 * * *",
      timezone: "UTC",
      label: "nightly",
      enabled: true,
      retention: {},
      next_run_at: Date.UTC(2030, 0, 1, 3),
    });
    await store.close();

    const res = await cairn(["status", "--json", "--config", configPath]);
    assert.equal(res.code, 1, res.stderr);
    const body = JSON.parse(res.stdout);
    assert.equal(body.healthy, false);
    const by = Object.fromEntries(body.clients.map((c: any) => [c.client, c]));
    assert.deepEqual(
      body.clients.map((c: any) => [c.client, c.health]),
      [["fine", "ok"], ["broken", "failing"], ["fresh", "never"]],
    );
    assert.deepEqual(by.fine.last_success, {
      job_id: fine.id,
      key: "backups/fine/k1.tar.gz",
      finished_at: new Date(fine.finished_at!).toISOString(),
    });
    assert.equal(by.fine.verified, true);
    assert.equal(by.fine.verification.job_id, verified.id);
    assert.equal(by.fine.overdue, false);
    assert.equal(by.fine.max_age_ms, 26 * H);
    assert.equal(by.fine.next_run_at, "2030-01-01T03:00:00.000Z");
    assert.equal(by.broken.verified, false);
    assert.equal(by.broken.last_failure.job_id, broke.id);
    assert.equal(by.fresh.last_success, null);

    const text = await cairn(["status", "--config", configPath]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^CLIENT\s+HEALTH\s+LAST SUCCESS\s+VERIFIED\s+NEXT RUN$/m);
    assert.match(text.stdout, /^broken\s+failing\s/m);

    // Through the API, from the same store.
    const services = await openServices(parseConfig(configText));
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const api = (await (await app.request("/admin/status")).json()).data;
      assert.equal(api.healthy, false);
      assert.deepEqual(api.clients, body.clients);
      assert.deepEqual(api.notifications, { failing: 0, dead: 0, by_channel: {} });
      await services.store.deleteSchedule(schedule.id);
    } finally {
      await services.store.close();
    }

    // Only the healthy client left: exit 0.
    const onlyFine = JSON.parse(configText);
    delete onlyFine.clients.broken;
    delete onlyFine.clients.fresh;
    await Deno.writeTextFile(configPath, JSON.stringify(onlyFine));
    const ok = await cairn(["status", "--json", "--config", configPath]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(JSON.parse(ok.stdout).clients[0].next_run_at, null);
    const usage = await cairn(["status", "extra", "--config", configPath]);
    assert.equal(usage.code, 2);
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { runAttempt } from "../../src/runtime/attempt.ts";
import { reconcileSchedules } from "../../src/runtime/config_schedules.ts";
import { pruneAfter } from "../../src/runtime/daemon.ts";
import { planPrune } from "../../src/runtime/prune.ts";
import { runHere } from "../../src/runtime/run_here.ts";
import { ScheduleWorker } from "../../src/runtime/scheduler.ts";
import type { WorkerPool } from "../../src/runtime/worker_pool.ts";
import { testServices } from "../helpers/services.ts";
import { makeTree, withTempDir } from "../helpers/tmp.ts";

const schedules = (extra: Record<string, unknown>[] = []): Record<string, unknown>[] => [
  { client: "files", cron: "0 3 * * *", label: "nightly", retention: { keep_daily: 7 } },
  { client: "files", cron: "30 4 * * 0", label: "nightly", kind: "verify" },
  ...extra,
];

Deno.test("config schedules: created, left alone, updated, removed; API schedules untouched", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { files: { kind: "directory", path: dir } });
    const { store } = services;
    try {
      const api = await store.createSchedule({
        client_name: "files",
        cron: "0 * * * *",
        timezone: "UTC",
        label: "nightly",
        enabled: true,
        retention: {},
        next_run_at: null,
      });
      const now = new Date("2026-11-30T12:00:00Z");
      const first = await reconcileSchedules(store, { schedules: parse(schedules()) }, now);
      assert.equal(first.created.length, 2);
      const [backup, verify] = first.created.map(async (id) => (await store.getSchedule(id))!);
      assert.deepEqual(
        [(await backup).kind, (await backup).config_owned, (await backup).next_run_at],
        ["backup", true, Date.parse("2026-12-01T03:00:00Z")],
      );
      assert.equal((await verify).kind, "verify");
      assert.deepEqual(
        await reconcileSchedules(store, { schedules: parse(schedules()) }, now),
        { created: [], updated: [], removed: [] },
        "a restart with the same config changes nothing",
      );
      const changed = schedules();
      changed[0] = { ...changed[0], cron: "0 2 * * *", auto_prune: false };
      changed.pop();
      const second = await reconcileSchedules(store, { schedules: parse(changed) }, now);
      assert.deepEqual(second, {
        created: [],
        updated: [first.created[0]],
        removed: [first.created[1]],
      });
      const updated = (await store.getSchedule(first.created[0]))!;
      assert.deepEqual(
        [updated.cron, updated.auto_prune, updated.next_run_at],
        ["0 2 * * *", false, Date.parse("2026-12-01T02:00:00Z")],
      );
      assert.ok(await store.getSchedule(api.id), "the API's schedule is not the config's");
      assert.equal((await store.getSchedule(api.id))!.config_owned, false);

      // The API refuses to edit or delete a config-owned schedule, and says where to.
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      for (const method of ["PATCH", "DELETE"]) {
        const res = await app.request(`/admin/backups/schedules/${updated.id}`, {
          method,
          body: method === "PATCH" ? JSON.stringify({ enabled: false }) : undefined,
          headers: { "content-type": "application/json" },
        });
        assert.equal(res.status, 409);
        const body = await res.json();
        assert.equal(body.code, "SCHEDULE_CONFIG_OWNED");
        assert.equal(
          body.message,
          `Schedule ${updated.id} (files/nightly) is declared in the config file's schedules: section; edit it there and restart the daemon (the API changes only schedules it created)`,
        );
      }
      const patched = await app.request(`/admin/backups/schedules/${api.id}`, {
        method: "PATCH",
        body: JSON.stringify({ auto_prune: false, kind: "verify" }),
        headers: { "content-type": "application/json" },
      });
      assert.equal(patched.status, 200);
      assert.deepEqual(
        [(await patched.json()).data.auto_prune, (await store.getSchedule(api.id))!.kind],
        [false, "verify"],
      );
    } finally {
      await store.close();
    }
  });
});

function parse(list: unknown[]) {
  return parseConfig(JSON.stringify({
    clients: { files: { kind: "directory", path: "/x" } },
    schedules: list,
  })).schedules;
}

Deno.test("config schedules: an unknown client, a bad cron and a duplicate are named", () => {
  try {
    parseConfig(JSON.stringify({
      clients: { files: { kind: "directory", path: "/x" } },
      schedules: [
        { client: "nope", cron: "0 3 * * *" },
        { client: "files", cron: "61 * * * *" },
        { client: "files", cron: "0 3 * * *" },
        { client: "files", cron: "0 4 * * *" },
      ],
    }));
    assert.fail("accepted");
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    const lines = error.problems.map((p) => `${p.path}: ${p.message}`);
    assert.ok(
      lines.some((l) => /^schedules\.0\.client: unknown client "nope"/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.startsWith("schedules.1.cron: ")), lines.join("\n"));
    assert.ok(
      lines.some((l) =>
        l.startsWith("schedules.3.label: a second backup schedule labelled scheduled")
      ),
      lines.join("\n"),
    );
  }
});

Deno.test("verify schedule: fires a rehearsal of the client's newest backup, named at run time", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, {
      files: { kind: "directory", path: src },
      empty: { kind: "directory", path: src },
    });
    const { store } = services;
    try {
      await runHere(services, { kind: "backup", client_name: "files", max_attempts: 1 });
      const newest = await runHere(services, {
        kind: "backup",
        client_name: "files",
        max_attempts: 1,
      });
      for (const client of ["files", "empty"]) {
        await store.createSchedule({
          client_name: client,
          cron: "0 3 * * *",
          timezone: "UTC",
          label: "rehearsal",
          enabled: true,
          retention: {},
          kind: "verify",
          next_run_at: Date.now() - 1000,
        });
      }
      const worker = new ScheduleWorker(services, { pollMs: 60_000, onEnqueued: () => {} });
      const fired = await worker.fireDue();
      await worker.stop();
      assert.deepEqual(fired.map((j) => [j.kind, j.client_name, j.key]), [
        ["verify", "files", null],
        ["verify", "empty", null],
      ]);
      const outcomes = [];
      for (const job of fired) {
        const claimed = (await store.claim({ owner: "t", leaseMs: 60_000 }, { id: job.id }))!;
        outcomes.push(
          await runAttempt(services, claimed, { controller: new AbortController() }),
        );
      }
      assert.equal(outcomes[0].status, "completed", outcomes[0].error ?? "");
      assert.equal(outcomes[0].key, newest.key, "the newest backup was rehearsed");
      assert.equal(outcomes[0].result?.key, newest.key);
      assert.equal(outcomes[1].status, "failed");
      assert.equal(
        outcomes[1].error,
        "Client empty has no backup to rehearse yet: a verify schedule checks the newest one",
      );
    } finally {
      await store.close();
    }
  });
});

Deno.test("retention keeps the newest verified backup (dry run says why); auto_prune can be off", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    const { store } = services;
    try {
      const schedule = await store.createSchedule({
        client_name: "files",
        cron: "0 * * * *",
        timezone: "UTC",
        label: "hourly",
        enabled: true,
        retention: { keep_last: 1 },
        next_run_at: null,
      });
      const keys: string[] = [];
      for (let i = 0; i < 3; i++) {
        const job = await runHere(services, {
          kind: "backup",
          client_name: "files",
          label: "hourly",
          schedule_id: schedule.id,
          max_attempts: 1,
        });
        keys.push(job.key!);
      }
      const verified = await runHere(services, {
        kind: "verify",
        client_name: "files",
        key: keys[0],
        max_attempts: 1,
      });
      assert.equal(verified.status, "completed");
      const [plan] = await planPrune(services, { client_name: "files" });
      assert.deepEqual(plan.keep.map((d) => [d.key, d.reasons]), [
        [keys[2], ["keep_last 1"]],
        [keys[0], ["newest verified backup"]],
      ]);
      assert.deepEqual(plan.remove.map((d) => d.key), [keys[1]]);

      // auto_prune: a completed scheduled backup queues a prune only when it is on.
      const last = (await store.list({ key: keys[2] }, { limit: 1 })).jobs[0];
      const pool = { wake() {} } as unknown as WorkerPool;
      await pruneAfter(services, pool, last);
      assert.equal(await store.count({ kind: "prune" }), 1);
      await store.updateSchedule(schedule.id, { auto_prune: false });
      await pruneAfter(services, pool, last);
      assert.equal(await store.count({ kind: "prune" }), 1, "switched off: no prune queued");
    } finally {
      await store.close();
    }
  });
});

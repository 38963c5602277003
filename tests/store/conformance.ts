import assert from "node:assert/strict";
import { CairnError } from "../../src/errors.ts";
import type { NewJob } from "../../src/jobs/types.ts";
import type { BaseOptions } from "../../src/store/base.ts";
import { type JobStore, LeaseLostError } from "../../src/store/store.ts";
import { tempDir } from "../helpers/tmp.ts";

export type OpenStore = (dir: string, options: BaseOptions) => Promise<JobStore>;

class Clock {
  t = 1_800_000_000_000;
  now = () => this.t;
}

const backup = (client = "c1", over: Partial<NewJob> = {}): NewJob => ({
  kind: "backup",
  client_name: client,
  label: "manual",
  max_attempts: 3,
  ...over,
});

const L = (owner = "w1") => ({ owner, leaseMs: 60_000 });

/**
 * One contract every JobStore implementation must keep (run for sqlite, jsonl and
 * postgres). `cleanup` removes what `open` made beyond `dir` (postgres: the database).
 */
export function storeConformance(
  name: string,
  open: OpenStore,
  cleanup: (dir: string) => Promise<void> = () => Promise.resolve(),
): void {
  const test = (
    title: string,
    fn: (
      ctx: { store: JobStore; clock: Clock; dir: string; reopen: () => Promise<JobStore> },
    ) => Promise<void>,
  ) =>
    Deno.test(`${name} store: ${title}`, async () => {
      const dir = await tempDir();
      const clock = new Clock();
      let store = await open(dir, { now: clock.now });
      const reopen = async () => {
        await store.close();
        store = await open(dir, { now: clock.now });
        return store;
      };
      try {
        await fn({
          get store() {
            return store;
          },
          clock,
          dir,
          reopen,
        } as never);
      } finally {
        await store.close();
        await Deno.remove(dir, { recursive: true });
        await cleanup(dir);
      }
    });

  test("enqueue assigns increasing ids and a pending status", async ({ store, clock }) => {
    const a = await store.enqueue(backup());
    const b = await store.enqueue(backup("c2", { schedule_id: null, params: { target: "/x" } }));
    assert.equal(a.status, "pending");
    assert.ok(b.id > a.id);
    assert.equal(a.created_at, clock.t);
    assert.deepEqual((await store.get(b.id))?.params, { target: "/x" });
    assert.equal(await store.get(9999), null);
  });

  test("claim is exclusive and takes the oldest due job first", async ({ store, clock }) => {
    const a = await store.enqueue(backup());
    const b = await store.enqueue(backup());
    await store.enqueue(backup("c1", { run_after: clock.t + 10_000 }));
    const first = await store.claim(L("w1"));
    const second = await store.claim(L("w2"));
    assert.equal(first?.id, a.id);
    assert.equal(second?.id, b.id);
    assert.notEqual(first?.lease_token, second?.lease_token);
    assert.equal(await store.claim(L("w3")), null, "the future job is not due");
    clock.t += 10_000;
    assert.ok(await store.claim(L("w3")));
  });

  test("concurrent claims never hand one job to two workers", async ({ store }) => {
    for (let i = 0; i < 20; i++) await store.enqueue(backup());
    const claims = await Promise.all(Array.from({ length: 40 }, (_, i) => store.claim(L(`w${i}`))));
    const ids = claims.filter((c) => c !== null).map((c) => c!.id);
    assert.equal(ids.length, 20);
    assert.equal(new Set(ids).size, 20);
  });

  test("a batch claim takes the oldest due jobs, each under its own lease; batches never overlap", async ({ store, clock }) => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await store.enqueue(backup())).id);
    await store.enqueue(backup("c1", { run_after: clock.t + 10_000 }));
    const first = await store.claimBatch(L("w1"), 3);
    assert.deepEqual(first.map((j) => j.id), ids.slice(0, 3));
    assert.ok(first.every((j) => j.status === "running" && j.attempts === 1));
    assert.equal(new Set(first.map((j) => j.lease_token)).size, 3, "a token per job");
    assert.deepEqual((await store.claimBatch(L("w2"), 10)).map((j) => j.id), ids.slice(3));
    assert.deepEqual(await store.claimBatch(L("w3"), 10), [], "the future job is not due");
    for (let i = 0; i < 30; i++) await store.enqueue(backup());
    const batches = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.claimBatch(L(`w${i}`), 7)),
    );
    const all = batches.flat().map((j) => j.id);
    assert.equal(all.length, 30);
    assert.equal(new Set(all).size, 30);
  });

  test("claim by id takes only that job", async ({ store }) => {
    await store.enqueue(backup());
    const b = await store.enqueue(backup());
    assert.equal((await store.claim(L(), { id: b.id }))?.id, b.id);
    assert.equal(await store.claim(L(), { id: b.id }), null);
  });

  test("enqueue already claimed (the CLI's one-off jobs)", async ({ store }) => {
    const j = await store.enqueue(backup(), { claimAs: L("cli") });
    assert.equal(j.status, "running");
    assert.equal(j.attempts, 1);
    assert.equal(await store.claim(L("daemon")), null);
  });

  test("renewal extends the lease; a stale token is refused", async ({ store, clock }) => {
    await store.enqueue(backup());
    const j = (await store.claim(L()))!;
    clock.t += 50_000;
    const renewed = await store.renew(j.id, j.lease_token!, 60_000, {
      progress: { bytes_done: 5, bytes_total: 10 },
    });
    assert.equal(renewed.lease_expires_at, clock.t + 60_000);
    assert.deepEqual((await store.get(j.id))?.progress, { bytes_done: 5, bytes_total: 10 });
    await assert.rejects(store.renew(j.id, "not-the-token", 1000), LeaseLostError);
    await assert.rejects(store.complete(j.id, "not-the-token", {}), LeaseLostError);
  });

  test("an expired lease lets another worker claim; the old owner is locked out", async ({ store, clock }) => {
    await store.enqueue(backup());
    const j = (await store.claim(L("dead")))!;
    clock.t += 59_999;
    assert.equal(await store.claim(L("w2")), null);
    clock.t += 1;
    const again = (await store.claim(L("w2")))!;
    assert.equal(again.id, j.id);
    assert.equal(again.attempts, 2);
    assert.equal(again.lease_owner, "w2");
    await assert.rejects(store.complete(j.id, j.lease_token!, {}), LeaseLostError);
    const done = await store.complete(again.id, again.lease_token!, { ok: true });
    assert.equal(done.status, "completed");
  });

  test("an expired lease on the last attempt dead-letters the job", async ({ store, clock }) => {
    await store.enqueue(backup("c1", { max_attempts: 1 }));
    await store.claim(L("dead"));
    clock.t += 60_000;
    assert.equal(await store.claim(L("w2")), null);
    const [j] = (await store.list({ status: "failed" }, { limit: 10 })).jobs;
    assert.match(j.error!, /lost its lease/);
  });

  test("finish records the result and clears the lease", async ({ store, clock }) => {
    await store.enqueue(backup());
    const j = (await store.claim(L()))!;
    await store.update(j.id, j.lease_token!, {
      key: "backups/c1/20261121T020000000Z-manual.tar.gz",
    });
    clock.t += 5;
    const done = await store.complete(j.id, j.lease_token!, { size_bytes: 42 });
    assert.equal(done.status, "completed");
    assert.deepEqual(done.result, { size_bytes: 42 });
    assert.equal(done.finished_at, clock.t);
    assert.equal(done.lease_token, null);
    assert.equal(done.key, "backups/c1/20261121T020000000Z-manual.tar.gz");
  });

  test("a failure schedules a retry by run_after, then dead-letters", async ({ store, clock }) => {
    await store.enqueue(backup("c1", { max_attempts: 2 }));
    let j = (await store.claim(L()))!;
    j = await store.fail(j.id, j.lease_token!, "first", { retryDelayMs: 1000 });
    assert.equal(j.status, "pending");
    assert.equal(j.run_after, clock.t + 1000);
    assert.equal(await store.claim(L()), null, "not before run_after");
    clock.t += 1000;
    j = (await store.claim(L()))!;
    j = await store.fail(j.id, j.lease_token!, "second", { retryDelayMs: 1000 });
    assert.equal(j.status, "failed");
    assert.equal(j.error, "second");
    assert.equal(await store.count({ status: "failed" }), 1);
  });

  test("requeue brings a dead letter back with fresh attempts; bulk requeue by criteria", async ({ store }) => {
    for (const c of ["a", "a", "b"]) {
      await store.enqueue(backup(c, { max_attempts: 1 }));
      const j = (await store.claim(L()))!;
      await store.fail(j.id, j.lease_token!, "x", { retryDelayMs: 0 });
    }
    const [one] = (await store.list({ status: "failed", client_name: "b" }, { limit: 5 })).jobs;
    const back = await store.requeue(one.id);
    assert.equal(back.status, "pending");
    assert.equal(back.attempts, 0);
    await assert.rejects(
      store.requeue(one.id),
      (e) => e instanceof CairnError && e.code === "JOB_NOT_REQUEUEABLE",
    );
    await assert.rejects(
      store.requeue(424242),
      (e) => e instanceof CairnError && e.code === "JOB_NOT_FOUND",
    );
    assert.equal(await store.requeueMany({ client_name: "a" }), 2);
    assert.equal(await store.count({ status: "failed" }), 0);
  });

  test("cancel: a pending job at once, a running one by flag, a finished one refused", async ({ store }) => {
    const p = await store.enqueue(backup());
    assert.equal((await store.requestCancel(p.id)).status, "cancelled");
    await store.enqueue(backup());
    const r = (await store.claim(L()))!;
    const flagged = await store.requestCancel(r.id);
    assert.equal(flagged.status, "running");
    assert.equal(flagged.cancel_requested, true);
    const renewed = await store.renew(r.id, r.lease_token!, 1000);
    assert.equal(
      renewed.cancel_requested,
      true,
      "the worker learns of the cancel on its next heartbeat",
    );
    assert.equal((await store.markCancelled(r.id, r.lease_token!)).status, "cancelled");
    await assert.rejects(
      store.requestCancel(r.id),
      (e) => e instanceof CairnError && e.code === "JOB_NOT_CANCELLABLE",
    );
    await assert.rejects(
      store.requestCancel(999),
      (e) => e instanceof CairnError && e.code === "JOB_NOT_FOUND",
    );
  });

  test("release returns a running job to pending without spending an attempt", async ({ store }) => {
    await store.enqueue(backup());
    const j = (await store.claim(L()))!;
    const r = await store.release(j.id, j.lease_token!);
    assert.equal(r.status, "pending");
    assert.equal(r.attempts, 0);
    assert.equal((await store.claim(L()))?.id, j.id);
  });

  test("listing filters and pages newest first with a cursor", async ({ store }) => {
    for (let i = 0; i < 7; i++) await store.enqueue(backup(i % 2 ? "odd" : "even"));
    await store.enqueue({ kind: "verify", client_name: "even", max_attempts: 1, key: "k" });
    const page1 = await store.list({}, { limit: 3 });
    assert.deepEqual(page1.jobs.map((j) => j.id), [8, 7, 6]);
    const page2 = await store.list({}, { limit: 3, cursor: page1.next_cursor });
    assert.deepEqual(page2.jobs.map((j) => j.id), [5, 4, 3]);
    const page3 = await store.list({}, { limit: 3, cursor: page2.next_cursor });
    assert.deepEqual(page3.jobs.map((j) => j.id), [2, 1]);
    assert.equal(page3.next_cursor, null);
    assert.deepEqual(
      (await store.list({ client_name: "odd" }, { limit: 10 })).jobs.map((j) => j.id),
      [6, 4, 2],
    );
    assert.deepEqual((await store.list({ kind: "verify" }, { limit: 10 })).jobs.map((j) => j.id), [
      8,
    ]);
    assert.deepEqual(
      (await store.list({ client_name: "even", kind: "backup" }, { limit: 2, offset: 1 })).jobs.map(
        (j) => j.id,
      ),
      [5, 3],
    );
    assert.equal(await store.count({ client_name: "even" }), 5);
    await assert.rejects(
      store.list({}, { limit: 3, cursor: "garbage!" }),
      (e) => e instanceof CairnError && e.code === "VALIDATION_FAILED",
    );
    const stats = await store.stats();
    assert.equal(stats.total, 8);
    assert.equal(stats.by_status.pending, 8);
    assert.equal(stats.by_kind.verify.pending, 1);
  });

  test("deleting jobs: one, only failed, by filter", async ({ store, clock }) => {
    const a = await store.enqueue(backup());
    assert.equal(await store.deleteJob(a.id, { onlyStatus: "failed" }), false);
    assert.equal(await store.deleteJob(a.id), true);
    assert.equal(await store.get(a.id), null);
    await store.enqueue(backup("c", { max_attempts: 1 }));
    const j = (await store.claim(L()))!;
    await store.fail(j.id, j.lease_token!, "x", { retryDelayMs: 0 });
    clock.t += 10 * 86400_000;
    assert.equal(
      await store.deleteJobs({ status: "failed", finished_before: clock.t - 11 * 86400_000 }),
      0,
    );
    assert.equal(
      await store.deleteJobs({ status: "failed", finished_before: clock.t - 9 * 86400_000 }),
      1,
    );
  });

  test("schedules: create, update, fire atomically once, delete keeps job history", async ({ store, clock }) => {
    const s = await store.createSchedule({
      client_name: "c1",
      cron: "0 * * * *",
      timezone: "UTC",
      label: "hourly",
      enabled: true,
      retention: { keep_last: 3 },
      next_run_at: clock.t + 1000,
    });
    assert.equal((await store.getSchedule(s.id))?.label, "hourly");
    assert.deepEqual(await store.fireDueSchedules(() => assert.fail("not due yet")), []);
    clock.t += 5000; // several "missed" occurrences: still one job
    const fire = (sched: { id: number; client_name: string; label: string }) => ({
      job: {
        kind: "backup" as const,
        client_name: sched.client_name,
        label: sched.label,
        max_attempts: 3,
      },
      next_run_at: clock.t + 3600_000,
    });
    const [fired, again] = await Promise.all([
      store.fireDueSchedules(fire),
      store.fireDueSchedules(fire),
    ]);
    assert.equal(fired.length + again.length, 1, "one occurrence, one job, even with two callers");
    const job = [...fired, ...again][0];
    assert.equal(job.schedule_id, s.id);
    const after = (await store.getSchedule(s.id))!;
    assert.equal(after.last_job_id, job.id);
    assert.equal(after.last_run_at, clock.t);
    assert.equal(after.next_run_at, clock.t + 3600_000);
    const updated = await store.updateSchedule(s.id, {
      enabled: false,
      retention: { keep_daily: 7 },
    });
    assert.equal(updated.enabled, false);
    assert.deepEqual(updated.retention, { keep_daily: 7 });
    await assert.rejects(
      store.updateSchedule(999, {}),
      (e) => e instanceof CairnError && e.code === "SCHEDULE_NOT_FOUND",
    );
    assert.equal((await store.listSchedules()).length, 1);
    assert.equal(await store.deleteSchedule(s.id), true);
    assert.equal(await store.deleteSchedule(s.id), false);
    assert.equal((await store.get(job.id))?.schedule_id, null, "history kept, reference nulled");
  });

  test("everything survives a reopen", async ({ store, reopen }) => {
    const a = await store.enqueue(backup());
    const claimed = (await store.claim(L()))!;
    await store.complete(claimed.id, claimed.lease_token!, { n: 1 });
    const b = await store.enqueue(backup("c2"));
    await store.deleteJob(b.id);
    const s = await store.createSchedule({
      client_name: "c1",
      cron: "* * * * *",
      timezone: "UTC",
      label: "x",
      enabled: true,
      retention: {},
      next_run_at: null,
    });
    const again = await reopen();
    assert.equal((await again.get(a.id))?.status, "completed");
    assert.deepEqual((await again.get(a.id))?.result, { n: 1 });
    assert.equal(await again.get(b.id), null);
    assert.equal((await again.getSchedule(s.id))?.label, "x");
    const c = await again.enqueue(backup());
    assert.ok(c.id > b.id, "ids are never reused");
  });

  const dlv = (key: string, channel = "hook") => ({
    channel,
    event: "job_failed",
    dedupe_key: key,
    payload: { job_id: 1, client: "c1" },
    max_attempts: 3,
  });

  test("outbox: enqueue is idempotent per (channel, dedupe_key)", async ({ store, clock }) => {
    const first = await store.enqueueDelivery(dlv("job_failed:1"));
    assert.equal(first.created, true);
    assert.equal(first.delivery.status, "pending");
    assert.equal(first.delivery.attempts, 0);
    assert.equal(first.delivery.next_attempt_at, clock.t);
    const again = await store.enqueueDelivery({ ...dlv("job_failed:1"), payload: { x: 2 } });
    assert.equal(again.created, false);
    assert.equal(again.delivery.id, first.delivery.id);
    assert.deepEqual(again.delivery.payload, { job_id: 1, client: "c1" }, "unchanged");
    const other = await store.enqueueDelivery(dlv("job_failed:1", "slack"));
    assert.equal(other.created, true, "another channel is another delivery");
    assert.equal((await store.listDeliveries({}, 10)).length, 2);
  });

  test("outbox: a claim leases deliveries, oldest due first", async ({ store, clock }) => {
    const a = (await store.enqueueDelivery(dlv("a"))).delivery;
    clock.t += 1;
    const b = (await store.enqueueDelivery(dlv("b"))).delivery;
    const claimed = await store.claimDeliveries(1, 30_000);
    assert.deepEqual(claimed.map((d) => d.id), [a.id]);
    assert.equal(claimed[0].next_attempt_at, clock.t + 30_000);
    assert.equal(claimed[0].attempts, 0);
    assert.deepEqual((await store.claimDeliveries(10, 30_000)).map((d) => d.id), [b.id]);
    assert.deepEqual(await store.claimDeliveries(10, 30_000), [], "both are leased");
    clock.t += 30_000;
    assert.equal((await store.claimDeliveries(10, 30_000)).length, 2, "an expired lease frees it");
  });

  test("outbox: settle retries with the delay, then gives up at max_attempts", async ({ store, clock }) => {
    const d = (await store.enqueueDelivery(dlv("a"))).delivery;
    const fail = { ok: false as const, error: "HTTP 500", retryDelayMs: 5_000 };
    await store.claimDeliveries(1, 60_000);
    const once = (await store.settleDelivery(d.id, fail))!;
    assert.equal(once.status, "pending");
    assert.equal(once.attempts, 1);
    assert.equal(once.last_error, "HTTP 500");
    assert.equal(once.next_attempt_at, clock.t + 5_000);
    assert.deepEqual(await store.deliveryCounts(), {
      hook: { pending: 1, delivered: 0, dead: 0, failing: 1 },
    });
    await store.settleDelivery(d.id, fail);
    const dead = (await store.settleDelivery(d.id, fail))!;
    assert.equal(dead.status, "dead");
    assert.equal(dead.attempts, 3);
    clock.t += 10 ** 9;
    assert.deepEqual(await store.claimDeliveries(10, 1), [], "a dead delivery is never claimed");
    assert.equal((await store.settleDelivery(d.id, { ok: true }))!.status, "dead", "final");
    assert.equal(await store.settleDelivery(9999, { ok: true }), null);
    assert.deepEqual((await store.listDeliveries({ status: "dead" }, 10)).map((x) => x.id), [d.id]);
  });

  test("outbox: delivered is final; old finished deliveries can be deleted", async ({ store, clock }) => {
    const a = (await store.enqueueDelivery(dlv("a"))).delivery;
    const b = (await store.enqueueDelivery(dlv("b"))).delivery;
    const ok = (await store.settleDelivery(a.id, { ok: true }))!;
    assert.equal(ok.status, "delivered");
    assert.equal(ok.delivered_at, clock.t);
    assert.equal(ok.attempts, 1);
    assert.deepEqual(await store.deliveryCounts(), {
      hook: { pending: 1, delivered: 1, dead: 0, failing: 0 },
    });
    clock.t += 1000;
    assert.equal(await store.deleteDeliveriesBefore(clock.t), 1, "only the finished one");
    assert.deepEqual((await store.listDeliveries({}, 10)).map((x) => x.id), [b.id]);
    assert.deepEqual(await store.listDeliveries({ channel: "nope" }, 10), []);
  });

  test("outbox: deliveries and their dedupe keys survive a reopen", async ({ store, reopen }) => {
    const a = (await store.enqueueDelivery(dlv("a"))).delivery;
    await store.settleDelivery(a.id, { ok: false, error: "refused", retryDelayMs: 1 });
    const again = await reopen();
    const [kept] = await again.listDeliveries({}, 10);
    assert.equal(kept.id, a.id);
    assert.equal(kept.attempts, 1);
    assert.equal(kept.last_error, "refused");
    assert.equal((await again.enqueueDelivery(dlv("a"))).created, false);
    const b = (await again.enqueueDelivery(dlv("b"))).delivery;
    assert.ok(b.id > a.id, "ids are never reused");
  });

  test("schedules keep kind, config_owned and auto_prune through update, firing and a reopen", async ({ store, clock, reopen }) => {
    const base = {
      client_name: "c1",
      cron: "0 * * * *",
      timezone: "UTC",
      label: "rehearsal",
      enabled: true,
      retention: {},
      next_run_at: clock.t + 1000,
    };
    const plain = await store.createSchedule(base);
    assert.deepEqual(
      [plain.kind, plain.config_owned, plain.auto_prune],
      ["backup", false, true],
      "the defaults",
    );
    const s = await store.createSchedule({
      ...base,
      kind: "verify",
      config_owned: true,
      auto_prune: false,
    });
    assert.deepEqual([s.kind, s.config_owned, s.auto_prune], ["verify", true, false]);
    const got = (await store.getSchedule(s.id))!;
    assert.deepEqual([got.kind, got.config_owned, got.auto_prune], ["verify", true, false]);
    const updated = await store.updateSchedule(s.id, { label: "weekly rehearsal" });
    assert.deepEqual([updated.kind, updated.config_owned, updated.auto_prune], [
      "verify",
      true,
      false,
    ]);
    const flipped = await store.updateSchedule(plain.id, { auto_prune: false, config_owned: true });
    assert.deepEqual([flipped.kind, flipped.config_owned, flipped.auto_prune], [
      "backup",
      true,
      false,
    ]);
    clock.t += 5000;
    await store.fireDueSchedules((sched) => ({
      job: { kind: sched.kind, client_name: sched.client_name, max_attempts: 1 },
      next_run_at: clock.t + 3600_000,
    }));
    const again = await reopen();
    const byId = new Map((await again.listSchedules()).map((x) => [x.id, x]));
    assert.deepEqual(
      [byId.get(s.id)!.kind, byId.get(s.id)!.config_owned, byId.get(s.id)!.auto_prune],
      ["verify", true, false],
    );
    assert.equal(byId.get(s.id)!.label, "weekly rehearsal");
    assert.deepEqual(
      [byId.get(plain.id)!.kind, byId.get(plain.id)!.config_owned, byId.get(plain.id)!.auto_prune],
      ["backup", true, false],
    );
  });

  test("a check job (no client) is enqueued, claimed and completed like any other kind", async ({ store }) => {
    const job = await store.enqueue({ kind: "check", client_name: null, max_attempts: 1 });
    assert.equal(job.kind, "check");
    const claimed = (await store.claim(L(), { clients: ["elsewhere"] }))!;
    assert.equal(claimed.id, job.id, "a job without a client runs on any node");
    const done = await store.complete(claimed.id, claimed.lease_token!, { problems: 0 });
    assert.equal(done.status, "completed");
    assert.deepEqual((await store.list({ kind: "check" }, { limit: 10 })).jobs.map((j) => j.id), [
      job.id,
    ]);
    assert.equal((await store.stats()).by_kind.check.completed, 1);
  });
}

import assert from "node:assert/strict";
import * as state from "../../src/jobs/state.ts";
import { retryDelayMs } from "../../src/jobs/backoff.ts";
import { CairnError } from "../../src/errors.ts";

const T0 = 1_700_000_000_000;
const job = (over: Partial<ReturnType<typeof state.newJob>> = {}) => ({
  ...state.newJob(1, { kind: "backup", client_name: "c", max_attempts: 3 }, T0),
  ...over,
});

Deno.test("a new job is pending, due now, with no attempts", () => {
  const j = job();
  assert.equal(j.status, "pending");
  assert.equal(j.attempts, 0);
  assert.equal(j.run_after, T0);
  assert.ok(state.isClaimable(j, T0));
  assert.ok(!state.isClaimable({ ...j, run_after: T0 + 1 }, T0));
});

Deno.test("claiming counts an attempt and sets a lease", () => {
  const c = state.claim(job(), T0, "w1", "tok", 1000);
  assert.equal(c.status, "running");
  assert.equal(c.attempts, 1);
  assert.equal(c.lease_token, "tok");
  assert.equal(c.lease_expires_at, T0 + 1000);
  assert.ok(!state.isClaimable(c, T0 + 999));
  assert.ok(state.isClaimable(c, T0 + 1000), "an expired lease can be claimed again");
  assert.throws(() => state.claim(c, T0 + 10, "w2", "t2", 1000), RangeError);
});

Deno.test("renewing moves the lease on", () => {
  const c = state.claim(job(), T0, "w", "t", 1000);
  assert.equal(state.renew(c, T0 + 900, 1000).lease_expires_at, T0 + 1900);
});

Deno.test("a failure retries with a delay until attempts run out, then dead-letters", () => {
  let j = state.claim(job(), T0, "w", "t", 1000);
  j = state.fail(j, T0 + 5, "boom", { retryDelayMs: 500 });
  assert.equal(j.status, "pending");
  assert.equal(j.run_after, T0 + 505);
  assert.equal(j.error, "boom");
  assert.equal(j.lease_token, null);
  j = state.fail(state.claim(j, T0 + 600, "w", "t", 1000), T0 + 700, "boom2", {
    retryDelayMs: 500,
  });
  assert.equal(j.status, "pending");
  j = state.fail(state.claim(j, T0 + 1300, "w", "t", 1000), T0 + 1400, "boom3", {
    retryDelayMs: 500,
  });
  assert.equal(j.status, "failed");
  assert.equal(j.attempts, 3);
  assert.equal(j.finished_at, T0 + 1400);
});

Deno.test("a permanent failure dead-letters at once", () => {
  const j = state.fail(state.claim(job(), T0, "w", "t", 1000), T0, "no such client", {
    retryDelayMs: 1,
    permanent: true,
  });
  assert.equal(j.status, "failed");
  assert.equal(j.attempts, 1);
});

Deno.test("cancel: pending at once, running flagged, terminal refused", () => {
  assert.equal(state.requestCancel(job(), T0).status, "cancelled");
  const running = state.requestCancel(state.claim(job(), T0, "w", "t", 1000), T0);
  assert.equal(running.status, "running");
  assert.equal(running.cancel_requested, true);
  assert.equal(state.markCancelled(running, T0).status, "cancelled");
  const done = state.complete(state.claim(job(), T0, "w", "t", 1000), T0, {});
  assert.throws(
    () => state.requestCancel(done, T0),
    (e) => e instanceof CairnError && e.code === "JOB_NOT_CANCELLABLE",
  );
});

Deno.test("release hands the attempt back for shutdown", () => {
  const r = state.release(state.claim(job(), T0, "w", "t", 1000), T0 + 5);
  assert.equal(r.status, "pending");
  assert.equal(r.attempts, 0);
  assert.equal(r.run_after, T0 + 5);
});

Deno.test("requeue only takes failed jobs and resets attempts", () => {
  const failed = state.fail(state.claim(job(), T0, "w", "t", 1000), T0, "x", {
    retryDelayMs: 0,
    permanent: true,
  });
  const r = state.requeue(failed, T0 + 1);
  assert.equal(r.status, "pending");
  assert.equal(r.attempts, 0);
  assert.equal(r.error, null);
  assert.throws(
    () => state.requeue(job(), T0),
    (e) => e instanceof CairnError && e.code === "JOB_NOT_REQUEUEABLE",
  );
});

Deno.test("an abandoned job with no attempt left fails instead of running again", () => {
  const j = { ...state.claim(job({ max_attempts: 1 }), T0, "w", "t", 1000) };
  assert.equal(state.settleAbandoned(j, T0 + 999), null);
  assert.ok(!state.isClaimable(j, T0 + 1000));
  const settled = state.settleAbandoned(j, T0 + 1000)!;
  assert.equal(settled.status, "failed");
  assert.match(settled.error!, /lost its lease/);
  const cancelled = state.settleAbandoned({
    ...state.claim(job(), T0, "w", "t", 10),
    cancel_requested: true,
  }, T0 + 10)!;
  assert.equal(cancelled.status, "cancelled");
});

Deno.test("backoff doubles from the base, with bounded jitter, capped", () => {
  const mid = () => 0.5;
  assert.equal(retryDelayMs(1, { baseMs: 5000, random: mid }), 5000);
  assert.equal(retryDelayMs(2, { baseMs: 5000, random: mid }), 10000);
  assert.equal(retryDelayMs(3, { baseMs: 5000, random: mid }), 20000);
  assert.equal(retryDelayMs(1, { baseMs: 5000, random: () => 0 }), 4000);
  assert.equal(retryDelayMs(1, { baseMs: 5000, random: () => 1 }), 6000);
  assert.equal(retryDelayMs(40, { baseMs: 5000, maxMs: 60000, random: () => 1 }), 60000);
  assert.equal(retryDelayMs(1, { baseMs: 0 }), 0);
});

Deno.test("a failure that ends the job keeps its result (a check's report); a retry does not carry it", () => {
  const report = { clean: false, problems: [{ kind: "temp_leftover" }] };
  const last = state.fail(job({ status: "running", attempts: 3 }), T0, "found", {
    retryDelayMs: 5,
    result: report,
  });
  assert.deepEqual([last.status, last.error, last.result], ["failed", "found", report]);
  const permanent = state.fail(job({ status: "running", attempts: 1 }), T0, "found", {
    retryDelayMs: 5,
    permanent: true,
    result: report,
  });
  assert.deepEqual(permanent.result, report);
  const retry = state.fail(job({ status: "running", attempts: 1 }), T0, "found", {
    retryDelayMs: 5,
    result: report,
  });
  assert.deepEqual([retry.status, retry.result], ["pending", null]);
  const plain = state.fail(job({ status: "running", attempts: 3 }), T0, "boom", {
    retryDelayMs: 5,
  });
  assert.equal(plain.result, null);
});

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { Job } from "../../src/jobs/types.ts";
import { channelEvents, ChannelSchema, NotificationsSchema } from "../../src/notify/config.ts";
import { claimDelivery, newDelivery, settleDelivery } from "../../src/notify/delivery.ts";
import { jobEvent, overdueEvent, recoveredEvent, startedEvent } from "../../src/notify/events.ts";
import { isOverdue, maxAgeFor, scheduleIntervalMs } from "../../src/notify/overdue.ts";
import { renderHttp, signature } from "../../src/notify/render.ts";
import { registerSecret } from "../../src/redact.ts";

const T = Date.UTC(2026, 10, 30, 12, 0, 0);

function job(over: Partial<Job> = {}): Job {
  return {
    id: 7,
    kind: "backup",
    client_name: "pg-main",
    key: null,
    label: "manual",
    status: "failed",
    attempts: 3,
    max_attempts: 3,
    progress: null,
    error: "connection refused",
    schedule_id: null,
    params: {},
    result: null,
    created_at: T - 60_000,
    started_at: T - 30_000,
    finished_at: T,
    run_after: T - 60_000,
    updated_at: T,
    lease_owner: null,
    lease_token: null,
    lease_expires_at: null,
    cancel_requested: false,
    ...over,
  };
}

Deno.test("notify events: a failed job is job_failed, a failed verify is verify_failed, keyed by finish", () => {
  const failed = jobEvent(job())!;
  assert.equal(failed.dedupe_key, `job_failed:7:${T}`);
  assert.equal(failed.payload.event, "job_failed");
  assert.equal(
    failed.payload.summary,
    "Backup job 7 of pg-main failed after 3 attempts: connection refused",
  );
  assert.equal(failed.payload.job?.finished_at, "2026-11-30T12:00:00.000Z");
  const verify = jobEvent(job({ kind: "verify", attempts: 1 }))!;
  assert.equal(verify.payload.event, "verify_failed");
  assert.equal(verify.dedupe_key, `verify_failed:7:${T}`);
  assert.equal(
    verify.payload.summary,
    "Verification of pg-main failed after 1 attempt: connection refused",
  );
  const ok = jobEvent(job({ status: "completed", error: null, key: "pg-main/x" }))!;
  assert.equal(ok.payload.event, "job_succeeded");
  assert.equal(ok.payload.summary, "Backup job 7 of pg-main succeeded (pg-main/x)");
  assert.equal(jobEvent(job({ status: "cancelled" })), null);
  assert.equal(jobEvent(job({ status: "running", finished_at: null })), null);
  // A job requeued from the DLQ that fails again is a second final failure.
  assert.notEqual(jobEvent(job({ finished_at: T + 1 }))!.dedupe_key, failed.dedupe_key);
  assert.equal(startedEvent(job({ attempts: 2 }), T).dedupe_key, "job_started:7:2");
  assert.equal(
    recoveredEvent(job({ id: 9, status: "completed" }), job()).dedupe_key,
    "client_recovered:9",
  );
});

Deno.test("notify events: no secret reaches a payload, even inside a job's error", () => {
  registerSecret("hunter2-secret");
  const e = jobEvent(job({ error: "auth failed for postgres://app:hunter2-secret@db/x" }))!;
  const text = JSON.stringify(e.payload);
  assert.ok(!text.includes("hunter2-secret"), text);
  assert.match(text, /postgres:\/\/app:\*\*\*@db\/x/);
});

Deno.test("notify events: overdue is one event per episode, named by the newest success", () => {
  const a = overdueEvent("web", { id: 4, at: T - 30 * 3_600_000 }, 26 * 3_600_000, T);
  assert.equal(a.dedupe_key, "backup_overdue:web:4");
  assert.equal(
    a.payload.summary,
    "web is overdue: no successful backup since 2026-11-29T06:00:00.000Z (limit 26 h)",
  );
  assert.equal(a.payload.last_success_at, "2026-11-29T06:00:00.000Z");
  assert.equal(overdueEvent("web", null, 3_600_000, T).dedupe_key, "backup_overdue:web:never");
});

Deno.test("notify overdue: max_age wins, else twice the most frequent enabled schedule", () => {
  const hourly = { cron: "0 * * * *", timezone: "UTC", enabled: true };
  const daily = { cron: "30 2 * * *", timezone: "UTC", enabled: true };
  assert.equal(scheduleIntervalMs(hourly, T), 3_600_000);
  assert.equal(scheduleIntervalMs(daily, T), 86_400_000);
  assert.equal(maxAgeFor(5_000, [hourly], T), 5_000);
  assert.equal(maxAgeFor(undefined, [daily, hourly], T), 7_200_000);
  assert.equal(maxAgeFor(undefined, [{ ...hourly, enabled: false }, daily], T), 172_800_000);
  assert.equal(maxAgeFor(undefined, [], T), null);
  assert.equal(isOverdue(T, null, null, 0), false, "not watched");
  assert.equal(isOverdue(T, 1000, T - 1000, 0), false, "exactly at the limit is not overdue");
  assert.equal(isOverdue(T, 1000, T - 1001, 0), true);
  assert.equal(isOverdue(T, 1000, null, T - 500), false, "a new client gets one period");
  assert.equal(isOverdue(T, 1000, null, T - 1001), true);
});

Deno.test("notify delivery state: claim, retry with delay, dead at max_attempts, final states stay", () => {
  const d = newDelivery(1, {
    channel: "c",
    event: "job_failed",
    dedupe_key: "k",
    payload: {},
    max_attempts: 2,
  }, T);
  assert.equal(claimDelivery(d, T, 5000).next_attempt_at, T + 5000);
  const once = settleDelivery(d, T + 1, { ok: false, error: "HTTP 500", retryDelayMs: 100 });
  assert.deepEqual(
    [once.status, once.attempts, once.next_attempt_at, once.last_error],
    ["pending", 1, T + 101, "HTTP 500"],
  );
  const dead = settleDelivery(once, T + 2, { ok: false, error: "HTTP 502", retryDelayMs: 100 });
  assert.deepEqual([dead.status, dead.attempts, dead.last_error], ["dead", 2, "HTTP 502"]);
  assert.equal(settleDelivery(dead, T + 3, { ok: true }), dead);
  const ok = settleDelivery(d, T + 4, { ok: true });
  assert.deepEqual([ok.status, ok.attempts, ok.delivered_at], ["delivered", 1, T + 4]);
  assert.equal(settleDelivery(ok, T + 5, { ok: false, error: "x", retryDelayMs: 1 }), ok);
});

const payload = jobEvent(job())!.payload;

Deno.test("notify render: webhook JSON with delivery id and an HMAC-SHA256 signature of the body", () => {
  const channel = ChannelSchema.parse({
    kind: "webhook",
    name: "hook",
    url: "http://127.0.0.1:1/h",
    secret: "s3cret",
  });
  if (channel.kind !== "webhook") throw new Error();
  const req = renderHttp(channel, 42, payload)!;
  const body = JSON.parse(req.body);
  assert.equal(body.delivery_id, 42);
  assert.equal(body.event, "job_failed");
  assert.equal(req.headers["x-cairn-delivery"], "42");
  assert.equal(req.headers["x-cairn-event"], "job_failed");
  const expected = "sha256=" + createHmac("sha256", "s3cret").update(req.body).digest("hex");
  assert.equal(req.headers["x-cairn-signature"], expected);
  // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
  assert.equal(
    signature("Jefe", "what do ya want for nothing?"),
    "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  assert.ok(!req.body.includes("s3cret"));
  const unsigned = renderHttp({ ...channel, secret: undefined }, 42, payload)!;
  assert.equal(unsigned.headers["x-cairn-signature"], undefined);
});

Deno.test("notify render: ntfy, slack and healthchecks requests", () => {
  const [ntfy, slack, hc] = NotificationsSchema.parse([
    { kind: "ntfy", name: "n", url: "http://h/topic", token: "tk_abc" },
    { kind: "slack", name: "s", url: "http://h/hooks/x" },
    { kind: "healthchecks", name: "h", urls: { "pg-main": "http://h/ping/uuid/" } },
  ]);
  if (ntfy.kind !== "ntfy" || slack.kind !== "slack" || hc.kind !== "healthchecks") throw 0;
  const n = renderHttp(ntfy, 1, payload)!;
  assert.equal(n.url, "http://h/topic");
  assert.equal(n.body, payload.summary);
  assert.equal(n.headers.title, "cairn: job failed (pg-main)");
  assert.equal(n.headers.priority, "4");
  assert.equal(n.headers.authorization, "Bearer tk_abc");
  const s = renderHttp(slack, 1, payload)!;
  assert.deepEqual(JSON.parse(s.body), {
    text: `*cairn: job failed (pg-main)*\n${payload.summary}`,
  });
  assert.equal(renderHttp(hc, 1, payload)!.url, "http://h/ping/uuid/fail");
  const started = startedEvent(job({ status: "running", finished_at: null }), T).payload;
  assert.equal(renderHttp(hc, 1, started)!.url, "http://h/ping/uuid/start");
  const ok = jobEvent(job({ status: "completed" }))!.payload;
  assert.equal(renderHttp(hc, 1, ok)!.url, "http://h/ping/uuid");
  assert.equal(renderHttp(hc, 1, { ...payload, client: "other" }), null, "no URL for the client");
  assert.deepEqual(channelEvents(hc), ["job_started", "job_succeeded", "job_failed", "test"]);
  assert.deepEqual(channelEvents(slack), [
    "job_failed",
    "verify_failed",
    "backup_overdue",
    "client_recovered",
    "test",
  ]);
});

Deno.test("notify config: duplicate channel names and bad URLs are named", () => {
  const dup = NotificationsSchema.safeParse([
    { kind: "slack", name: "a", url: "http://h/x" },
    { kind: "slack", name: "a", url: "ftp://h/x" },
  ]);
  assert.equal(dup.success, false);
  const messages = dup.error!.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  assert.deepEqual(messages.sort(), [
    '1.name: duplicate channel name "a": names must be unique',
    "1.url: must be a URL starting with http:// or https://",
  ]);
});

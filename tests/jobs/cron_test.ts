import assert from "node:assert/strict";
import { cronProblem, nextRunAt, timezoneProblem } from "../../src/jobs/cron.ts";

Deno.test("cron: 5 and 6 fields are accepted, other shapes and values are refused with a reason", () => {
  assert.equal(cronProblem("0 3 * * *"), null);
  assert.equal(cronProblem("*/10 0 3 * * 1-5"), null);
  assert.match(cronProblem("* * * *")!, /5 fields/);
  assert.match(cronProblem("0 0 0 1 1 * 2030")!, /5 fields/);
  assert.match(cronProblem("61 * * * *")!, /minute/);
  assert.ok(cronProblem("nonsense here x y z"));
});

Deno.test("cron: next run is computed in the schedule's time zone", () => {
  const after = new Date("2026-11-21T00:00:00Z");
  assert.equal(nextRunAt("0 3 * * *", "UTC", after)?.toISOString(), "2026-11-21T03:00:00.000Z");
  assert.equal(
    nextRunAt("0 3 * * *", "America/New_York", after)?.toISOString(),
    "2026-11-21T08:00:00.000Z",
  );
  // 02:30 does not exist on the spring-forward day: the daily backup still runs, at 03:00 local.
  assert.equal(
    nextRunAt("30 2 * * *", "Europe/Berlin", new Date("2026-03-28T12:00:00Z"))?.toISOString(),
    "2026-03-29T01:00:00.000Z",
  );
  assert.equal(
    nextRunAt("30 2 * * *", "Europe/Berlin", new Date("2026-03-29T12:00:00Z"))?.toISOString(),
    "2026-03-30T00:30:00.000Z",
  );
  assert.equal(
    nextRunAt("*/5 * * * * *", "UTC", new Date("2026-01-01T00:00:01Z"))?.toISOString(),
    "2026-01-01T00:00:05.000Z",
  );
});

Deno.test("time zones: IANA names only", () => {
  assert.equal(timezoneProblem("Europe/Berlin"), null);
  assert.equal(timezoneProblem("UTC"), null);
  assert.match(timezoneProblem("Mars/Base")!, /unknown time zone/);
});

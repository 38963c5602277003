import assert from "node:assert/strict";
import { applyPolicy, hasAnyRule, periodKey } from "../../src/retention/policy.ts";

const b = (iso: string) => ({ key: iso, created_at: new Date(iso) });
const kept = (plan: ReturnType<typeof applyPolicy>) => plan.keep.map((d) => d.key).sort();

Deno.test("keep_last keeps the newest N, whatever their order in the input", () => {
  const backups = [
    "2026-01-03T00:00:00Z",
    "2026-01-01T00:00:00Z",
    "2026-01-02T00:00:00Z",
    "2026-01-04T00:00:00Z",
  ].map(b);
  const plan = applyPolicy(backups, { keep_last: 2 });
  assert.deepEqual(kept(plan), ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"]);
  assert.deepEqual(plan.keep.map((d) => d.reasons), [["keep_last 2"], ["keep_last 2"]]);
  assert.equal(plan.remove.length, 2);
  assert.ok(plan.remove.every((d) => !d.keep && d.reasons.length === 0));
});

Deno.test("keep_daily keeps the newest backup of each of the newest N days that have one", () => {
  const backups = [
    "2026-03-10T23:00:00Z",
    "2026-03-10T08:00:00Z", // day 10: newest is 23:00
    "2026-03-08T12:00:00Z", // day 9 has none: skipped, not counted
    "2026-03-07T12:00:00Z",
  ].map(b);
  const plan = applyPolicy(backups, { keep_daily: 2 });
  assert.deepEqual(kept(plan), ["2026-03-08T12:00:00Z", "2026-03-10T23:00:00Z"]);
  assert.deepEqual(plan.keep.find((d) => d.key.startsWith("2026-03-10"))?.reasons, [
    "keep_daily 2026-03-10",
  ]);
});

Deno.test("a backup is kept if any rule keeps it, with every reason listed", () => {
  const backups = [
    "2026-01-31T10:00:00Z",
    "2026-01-31T09:00:00Z",
    "2025-12-31T10:00:00Z",
    "2025-11-15T10:00:00Z",
  ].map(b);
  const plan = applyPolicy(backups, { keep_last: 1, keep_monthly: 2, keep_yearly: 3 });
  const reasons = Object.fromEntries(plan.keep.map((d) => [d.key, d.reasons]));
  assert.deepEqual(reasons["2026-01-31T10:00:00Z"], [
    "keep_last 1",
    "keep_monthly 2026-01",
    "keep_yearly 2026",
  ]);
  assert.deepEqual(reasons["2025-12-31T10:00:00Z"], ["keep_monthly 2025-12", "keep_yearly 2025"]);
  assert.deepEqual(plan.remove.map((d) => d.key).sort(), [
    "2025-11-15T10:00:00Z",
    "2026-01-31T09:00:00Z",
  ]);
});

Deno.test("periods are taken in the schedule's time zone", () => {
  // 23:30 UTC on Jan 1 is already Jan 2 in Tokyo.
  const backups = ["2026-01-01T23:30:00Z", "2026-01-01T10:00:00Z"].map(b);
  assert.equal(applyPolicy(backups, { keep_daily: 5 }, { timeZone: "UTC" }).keep.length, 1);
  assert.equal(applyPolicy(backups, { keep_daily: 5 }, { timeZone: "Asia/Tokyo" }).keep.length, 2);
  assert.equal(periodKey(new Date("2026-01-01T23:30:00Z"), "daily", "Asia/Tokyo"), "2026-01-02");
});

Deno.test("year boundaries: ISO weeks and years roll over correctly", () => {
  assert.equal(periodKey(new Date("2026-12-31T12:00:00Z"), "weekly", "UTC"), "2026-W53");
  assert.equal(periodKey(new Date("2027-01-01T12:00:00Z"), "weekly", "UTC"), "2026-W53");
  assert.equal(periodKey(new Date("2027-01-04T12:00:00Z"), "weekly", "UTC"), "2027-W01");
  assert.equal(periodKey(new Date("2024-12-30T12:00:00Z"), "weekly", "UTC"), "2025-W01");
  assert.equal(periodKey(new Date("2025-12-31T23:59:59Z"), "yearly", "UTC"), "2025");
  assert.equal(periodKey(new Date("2025-12-31T23:59:59Z"), "yearly", "Europe/Berlin"), "2026");
  const plan = applyPolicy(
    ["2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z", "2027-01-05T12:00:00Z"].map(b),
    { keep_weekly: 2 },
  );
  assert.deepEqual(kept(plan), ["2027-01-01T12:00:00Z", "2027-01-05T12:00:00Z"]);
});

Deno.test("DST: the repeated fall-back hour counts as two hours, the spring-forward gap as none", () => {
  // Europe/Berlin leaves summer time on 2026-10-25: 02:00-03:00 local happens twice.
  const fallBack = ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"].map(b); // 02:30 CEST, then 02:30 CET
  assert.equal(
    applyPolicy(fallBack, { keep_hourly: 10 }, { timeZone: "Europe/Berlin" }).keep.length,
    2,
  );
  assert.equal(
    applyPolicy(fallBack, { keep_daily: 10 }, { timeZone: "Europe/Berlin" }).keep.length,
    1,
  );
  // Spring forward on 2026-03-29: 01:59 CET is followed by 03:00 CEST, one hour apart in UTC.
  const spring = ["2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z"].map(b);
  assert.equal(
    periodKey(spring[1].created_at, "hourly", "Europe/Berlin").slice(0, 13),
    "2026-03-29T03",
  );
  assert.equal(
    applyPolicy(spring, { keep_hourly: 10 }, { timeZone: "Europe/Berlin" }).keep.length,
    2,
  );
  // A day with 23 hours is still one day.
  const short = ["2026-03-28T23:30:00Z", "2026-03-29T21:30:00Z"].map(b);
  assert.equal(
    applyPolicy(short, { keep_daily: 10 }, { timeZone: "Europe/Berlin" }).keep.length,
    1,
  );
});

Deno.test("exhaustive: every rule count from 0 to 6 over 40 hourly backups behaves by definition", () => {
  const start = Date.parse("2026-06-01T00:00:00Z");
  const backups = Array.from(
    { length: 40 },
    (_, i) => ({
      key: `k${String(i).padStart(2, "0")}`,
      created_at: new Date(start + i * 3 * 3600_000),
    }),
  );
  for (let n = 0; n <= 6; n++) {
    const last = applyPolicy(backups, { keep_last: n });
    assert.deepEqual(
      last.keep.map((d) => d.key),
      backups.slice(-n || backups.length).slice(n ? 0 : backups.length).reverse().map((x) => x.key),
    );
    const daily = applyPolicy(backups, { keep_daily: n });
    const days = new Set(backups.map((x) => x.created_at.toISOString().slice(0, 10)));
    assert.equal(daily.keep.length, Math.min(n, days.size));
    assert.equal(daily.keep.length + daily.remove.length, 40);
    for (const d of daily.keep) {
      const day = backups.find((x) => x.key === d.key)!.created_at.toISOString().slice(0, 10);
      const newestOfDay = backups.filter((x) => x.created_at.toISOString().startsWith(day)).at(-1)!;
      assert.equal(d.key, newestOfDay.key, "the newest of its day");
    }
  }
});

Deno.test("no rule keeps everything out of the plan's hands", () => {
  assert.equal(hasAnyRule({}), false);
  assert.equal(hasAnyRule({ keep_last: 0 }), false);
  assert.equal(hasAnyRule({ keep_daily: 1 }), true);
  assert.equal(applyPolicy([], { keep_last: 3 }).keep.length, 0);
});

Deno.test("keep_frequent: quarter hours, local labels, the newest of each of the newest N", () => {
  assert.equal(
    periodKey(new Date("2026-11-20T10:14:59.999Z"), "frequent", "UTC").replace(/@\d+$/, ""),
    "2026-11-20T10:00",
  );
  assert.equal(
    periodKey(new Date("2026-11-20T10:15:00Z"), "frequent", "UTC").replace(/@\d+$/, ""),
    "2026-11-20T10:15",
  );
  // Kathmandu is UTC+5:45: still whole quarter hours.
  assert.equal(
    periodKey(new Date("2026-11-20T10:15:00Z"), "frequent", "Asia/Kathmandu").replace(/@\d+$/, ""),
    "2026-11-20T16:00",
  );
  const backups = [
    "2026-11-20T10:01:00Z",
    "2026-11-20T10:14:00Z", // newest of 10:00
    "2026-11-20T10:16:00Z", // only one of 10:15
    "2026-11-20T10:31:00Z",
    "2026-11-20T10:44:00Z", // newest of 10:30
    "2026-11-20T11:20:00Z", // 11:15 (11:00 has none)
  ].map(b);
  const plan = applyPolicy(backups, { keep_frequent: 3 });
  assert.deepEqual(kept(plan), [
    "2026-11-20T10:16:00Z",
    "2026-11-20T10:44:00Z",
    "2026-11-20T11:20:00Z",
  ]);
  assert.deepEqual(
    plan.keep.map((d) => d.reasons),
    [["keep_frequent 2026-11-20T11:15"], ["keep_frequent 2026-11-20T10:30"], [
      "keep_frequent 2026-11-20T10:15",
    ]],
  );
});

Deno.test("keep_frequent: the repeated DST hour has eight quarters, not four", () => {
  // Europe/Berlin falls back at 01:00 UTC on 2026-10-25: local 02:00-02:59 happens twice.
  const a = periodKey(new Date("2026-10-25T00:05:00Z"), "frequent", "Europe/Berlin");
  const c = periodKey(new Date("2026-10-25T01:05:00Z"), "frequent", "Europe/Berlin");
  assert.equal(a.replace(/@\d+$/, ""), "2026-10-25T02:00");
  assert.equal(c.replace(/@\d+$/, ""), "2026-10-25T02:00");
  assert.notEqual(a, c);
});

Deno.test("exhaustive: keep_frequent 0..10 over 48 backups every 7 minutes keeps by definition", () => {
  const start = Date.parse("2026-06-01T00:00:00Z");
  const backups = Array.from({ length: 48 }, (_, i) => ({
    key: `k${String(i).padStart(2, "0")}`,
    created_at: new Date(start + i * 7 * 60_000),
  }));
  const quarter = (x: { created_at: Date }) => Math.floor(x.created_at.getTime() / 900_000);
  const quarters = [...new Set(backups.map(quarter))].sort((x, y) => y - x);
  for (let n = 0; n <= 10; n++) {
    const plan = applyPolicy(backups, { keep_frequent: n });
    const expected = quarters.slice(0, n).map((q) =>
      backups.filter((x) => quarter(x) === q).at(-1)!.key
    );
    assert.deepEqual(plan.keep.map((d) => d.key), expected, `keep_frequent ${n}`);
    assert.equal(plan.keep.length + plan.remove.length, 48);
  }
});

Deno.test("the newest verified backup is always kept, with its reason; unverified ones are not", () => {
  const backups = [
    "2026-01-01T00:00:00Z",
    "2026-01-02T00:00:00Z",
    "2026-01-03T00:00:00Z",
    "2026-01-04T00:00:00Z",
  ].map(b);
  const verified = new Set(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]);
  const plan = applyPolicy(backups, { keep_last: 1 }, { verified });
  assert.deepEqual(kept(plan), ["2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"]);
  assert.deepEqual(plan.keep.find((d) => d.key === "2026-01-02T00:00:00Z")!.reasons, [
    "newest verified backup",
  ]);
  // Already kept by a rule: the reason is added, nothing else changes.
  const both = applyPolicy(backups, { keep_last: 3 }, { verified });
  assert.deepEqual(both.keep.find((d) => d.key === "2026-01-02T00:00:00Z")!.reasons, [
    "keep_last 3",
    "newest verified backup",
  ]);
  assert.deepEqual(
    kept(applyPolicy(backups, { keep_last: 1 }, { verified: new Set() })),
    ["2026-01-04T00:00:00Z"],
  );
});

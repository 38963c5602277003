import assert from "node:assert/strict";
import { ScheduleWorker } from "../../src/runtime/scheduler.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { testServices } from "../helpers/services.ts";

Deno.test("scheduler: a daemon that was down over many due times runs the schedule once, then moves on", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { files: { kind: "directory", path: dir } });
    try {
      const schedule = await services.store.createSchedule({
        client_name: "files",
        cron: "* * * * *",
        timezone: "UTC",
        label: "minutely",
        enabled: true,
        retention: {},
        next_run_at: Date.now() - 6 * 3600_000, // six hours of missed minutes
      });
      const woke: number[] = [];
      const worker = new ScheduleWorker(services, {
        pollMs: 60_000,
        onEnqueued: (jobs) => woke.push(jobs.length),
      });
      const fired = await worker.fireDue();
      assert.equal(fired.length, 1);
      assert.equal(fired[0].schedule_id, schedule.id);
      assert.equal(fired[0].label, "minutely");
      assert.equal(fired[0].status, "pending");
      assert.deepEqual(woke, [1]);
      const after = (await services.store.getSchedule(schedule.id))!;
      assert.ok(after.next_run_at! > Date.now(), "next run is in the future");
      assert.ok(after.next_run_at! - Date.now() <= 60_000);
      assert.equal(after.last_job_id, fired[0].id);
      assert.deepEqual(await worker.fireDue(), [], "nothing more is due");
      await services.store.updateSchedule(schedule.id, {
        enabled: false,
        next_run_at: Date.now() - 1000,
      });
      assert.deepEqual(await worker.fireDue(), [], "disabled schedules never fire");
      await worker.stop();
    } finally {
      await services.store.close();
    }
  });
});

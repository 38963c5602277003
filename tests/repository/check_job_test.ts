import assert from "node:assert/strict";
import { join } from "node:path";
import { json, type RunningDaemon, spawnDaemon, waitFor, waitForJob } from "../helpers/daemon.ts";
import { startReceiver } from "../helpers/receiver.ts";
import { withTempDir } from "../helpers/tmp.ts";

const KEY = "check-job-admin-key-0123456789";

async function check(d: RunningDaemon): Promise<number> {
  const res = await d.api("/admin/repository/check", { method: "POST", json: {} });
  assert.equal(res.status, 202);
  return (await json(res)).data.job_id;
}

Deno.test({
  name:
    "check job: problems fail the job (CHECK_FOUND_PROBLEMS, one attempt, report kept), one job_failed notification, metrics count it",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const rx = startReceiver();
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
          clients: { files: { kind: "directory", path: src } },
          notifications: [{ kind: "webhook", name: "ops", url: rx.url + "/cairn" }],
        }),
      );
      d = await spawnDaemon(config, { adminKey: KEY });
      const b = await d.api("/admin/backups", { method: "POST", json: { client_name: "files" } });
      const backup = await waitForJob(d, (await json(b)).data.job_id, ["completed", "failed"]);
      assert.equal(backup.status, "completed");

      // A clean repository: the check job completes, its result is the report.
      const clean = await waitForJob(d, await check(d), ["completed", "failed"]);
      assert.equal(clean.status, "completed", clean.error ?? "");
      assert.equal(clean.result.clean, true);
      assert.deepEqual(clean.result.problems, []);

      // The artifact removed: the check finds its manifest alone.
      const key: string = backup.key;
      await Deno.remove(join(dir, "repo", key));
      const failed = await waitForJob(d, await check(d), ["completed", "failed"]);
      assert.equal(failed.status, "failed");
      assert.equal(failed.attempts, 1, "not retried: the repository holds what it holds");
      assert.equal(
        failed.error,
        `The repository check of ${
          join(dir, "repo")
        } found 1 problem (1 artifact_missing): the manifest of ${key} exists but its artifact does not`,
      );
      assert.equal(failed.result.error_code, "CHECK_FOUND_PROBLEMS");
      assert.equal(failed.result.clean, false);
      assert.deepEqual(failed.result.problems, [{
        kind: "artifact_missing",
        key,
        message: `the manifest of ${key} exists but its artifact does not`,
      }]);
      // It is in the dead-letter queue like any job that failed for good.
      const dlq = (await json(await d.api("/admin/backups/dlq"))).data;
      assert.deepEqual(
        dlq.jobs.map((j: { id: number }) => j.id),
        [failed.id],
      );

      await rx.waitFor(1);
      await new Promise((r) => setTimeout(r, 1500)); // nothing more arrives
      assert.equal(rx.received.length, 1, "the operator hears about it exactly once");
      const body = JSON.parse(rx.received[0].body);
      assert.equal(body.event, "job_failed");
      assert.equal(body.client, null);
      assert.deepEqual([body.job.id, body.job.kind, body.job.status], [
        failed.id,
        "check",
        "failed",
      ]);
      assert.equal(
        body.summary,
        `Check job ${failed.id} failed after 1 attempt: ${failed.error}`,
      );

      const text = await (await d.api("/metrics")).text();
      const lines = text.split("\n");
      for (
        const line of [
          `cairn_jobs{kind="check",status="failed"} 1`,
          `cairn_jobs{kind="check",status="completed"} 1`,
          `cairn_dlq_jobs 1`,
        ]
      ) assert.ok(lines.includes(line), `${line} in:\n${text}`);

      // After a restart the rescan finds the same failure: still one notification.
      assert.equal(await d.stop("SIGTERM"), 0);
      d = await spawnDaemon(config, { adminKey: KEY });
      await waitFor(
        async () => (await d!.api("/admin/status")).status === 200,
        "the restarted daemon",
      );
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(rx.received.length, 1, "no second notification after a restart");
    });
  } finally {
    await (d as RunningDaemon | null)?.stop("SIGTERM");
    await rx.close();
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Job } from "../../src/jobs/types.ts";
import { listBackups } from "../../src/repository/manifest.ts";
import { WorkerPool } from "../../src/runtime/worker_pool.ts";
import { waitFor } from "../helpers/daemon.ts";
import { freePort, randomBytes, withTempDir } from "../helpers/tmp.ts";
import { testServices } from "../helpers/services.ts";

/**
 * A directory big enough that backing it up takes a while: every MiB is fresh random
 * data, which does not compress (one MiB written again and again would: zstd's window
 * sees the repeats, and the backup then finished inside a test's grace period).
 */
async function bigTree(dir: string, mib: number): Promise<string> {
  const src = join(dir, "big");
  await Deno.mkdir(src);
  const f = await Deno.open(join(src, "blob.bin"), { write: true, create: true });
  for (let i = 0; i < mib; i++) await f.write(randomBytes(1 << 20));
  f.close();
  return src;
}

Deno.test("pool: an in-process enqueue starts at once, not at the next poll", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await Deno.mkdir(src);
    await Deno.writeTextFile(join(src, "a"), "a");
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    const pool = new WorkerPool(services, { concurrency: 2, pollMs: 60_000 });
    pool.start();
    try {
      await new Promise((r) => setTimeout(r, 100)); // the loop is now asleep for a minute
      const started = Date.now();
      const job = await services.store.enqueue({
        kind: "backup",
        client_name: "files",
        max_attempts: 1,
      });
      pool.wake();
      const done = await waitFor(async () => {
        const j = await services.store.get(job.id);
        return j?.status === "completed" ? j : null;
      }, "the job to complete");
      assert.ok(Date.now() - started < 5000, "far sooner than the 60 s poll");
      assert.ok(done.result?.key);
    } finally {
      await pool.stop(1000);
      await services.store.close();
    }
  });
});

Deno.test("pool: runs up to worker_concurrency jobs at once and retries failures with backoff", async () => {
  await withTempDir(async (dir) => {
    const src = await bigTree(dir, 24);
    const services = await testServices(dir, {
      big: { kind: "directory", path: src },
      // A server that is down may come back: retried (a missing directory is not).
      broken: { kind: "postgres", url: `postgres://postgres@127.0.0.1:${freePort()}/app` },
    }, { retry_backoff_ms: 50 });
    const settled: Job[] = [];
    const pool = new WorkerPool(services, {
      concurrency: 2,
      pollMs: 250,
      onSettled: (j) => void settled.push(j),
    });
    try {
      for (let i = 0; i < 3; i++) {
        await services.store.enqueue({ kind: "backup", client_name: "big", max_attempts: 1 });
      }
      const failing = await services.store.enqueue({
        kind: "backup",
        client_name: "broken",
        max_attempts: 3,
      });
      pool.start();
      let maxRunning = 0;
      await waitFor(
        async () => {
          maxRunning = Math.max(maxRunning, await services.store.count({ status: "running" }));
          return settled.length === 4;
        },
        "all jobs to settle",
        60_000,
      );
      assert.ok(maxRunning <= 2, `at most 2 running, saw ${maxRunning}`);
      assert.equal(await services.store.count({ status: "completed" }), 3);
      const f = (await services.store.get(failing.id))!;
      assert.equal(f.status, "failed");
      assert.equal(f.attempts, 3, "retried until attempts ran out");
      assert.match(f.error!, /refused the connection/);
    } finally {
      await pool.stop(1000);
      await services.store.close();
    }
  });
});

Deno.test("pool: cancelling a running job stops it, removes partial output and marks it cancelled", async () => {
  await withTempDir(async (dir) => {
    const src = await bigTree(dir, 200);
    const services = await testServices(dir, { big: { kind: "directory", path: src } });
    const pool = new WorkerPool(services, { concurrency: 1, pollMs: 250, heartbeatMs: 100 });
    try {
      const job = await services.store.enqueue({
        kind: "backup",
        client_name: "big",
        max_attempts: 1,
      });
      pool.start();
      await waitFor(
        async () => (await services.store.get(job.id))?.progress?.bytes_done,
        "progress to be saved",
      );
      // Cancel through the store only, as another process (the API, another CLI) would.
      await services.store.requestCancel(job.id);
      const final = await waitFor(async () => {
        const j = await services.store.get(job.id);
        return j?.status === "cancelled" ? j : null;
      }, "the job to be cancelled");
      assert.equal(final.lease_token, null);
      assert.deepEqual((await listBackups(services.repository)).backups, []);
      const tmp = [...Deno.readDirSync(join(dir, "repo", ".tmp"))];
      assert.deepEqual(tmp, [], "the partial artifact was removed");
      assert.equal(await services.repository.stat(final.key!), null);
    } finally {
      await pool.stop(1000);
      await services.store.close();
    }
  });
});

Deno.test("pool: shutdown waits out the grace period, then releases running jobs for a restart", async () => {
  await withTempDir(async (dir) => {
    const src = await bigTree(dir, 200);
    const services = await testServices(dir, { big: { kind: "directory", path: src } }, {
      worker_max_attempts: 3,
    });
    const pool = new WorkerPool(services, { concurrency: 1, pollMs: 250 });
    try {
      const job = await services.store.enqueue({
        kind: "backup",
        client_name: "big",
        max_attempts: 3,
      });
      pool.start();
      await waitFor(
        async () => (await services.store.get(job.id))?.status === "running",
        "the job to start",
      );
      const before = Date.now();
      await pool.stop(300);
      assert.ok(Date.now() - before >= 250, "the grace period was given");
      const released = (await services.store.get(job.id))!;
      assert.equal(released.status, "pending");
      assert.equal(released.attempts, 0, "the interrupted attempt is not counted");
      assert.equal(released.lease_token, null);
      assert.ok(released.run_after <= Date.now(), "due again at once");
      assert.deepEqual(
        (await listBackups(services.repository)).backups,
        [],
        "no half backup listed",
      );
      const next = new WorkerPool(services, { concurrency: 1, pollMs: 250 });
      next.start();
      const done = await waitFor(
        async () => {
          const j = await services.store.get(job.id);
          return j?.status === "completed" ? j : null;
        },
        "the job to complete after restart",
        60_000,
      );
      await next.stop(1000);
      assert.equal(done.attempts, 1);
      assert.equal((await listBackups(services.repository)).backups.length, 1);
    } finally {
      await services.store.close();
    }
  });
});

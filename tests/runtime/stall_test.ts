import assert from "node:assert/strict";
import type { Job } from "../../src/jobs/types.ts";
import { runAttempt, stallTimeoutMs } from "../../src/runtime/attempt.ts";
import { WorkerPool } from "../../src/runtime/worker_pool.ts";
import { waitFor } from "../helpers/daemon.ts";
import { pg, PG_HOST, PG_PORT, requirePostgres, withDatabase } from "../helpers/pg.ts";
import { testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

Deno.test("stall: the client's stall_timeout_minutes overrides backup.stall_timeout_minutes (default 30)", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      a: { kind: "directory", path: dir, stall_timeout_minutes: 2 },
      b: { kind: "directory", path: dir },
    });
    try {
      const job = (client: string | null) => ({ client_name: client }) as Job;
      assert.equal(stallTimeoutMs(services, job("a")), 120_000);
      assert.equal(stallTimeoutMs(services, job("b")), 30 * 60_000);
      assert.equal(stallTimeoutMs(services, job(null)), 30 * 60_000);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("stall: an attempt whose progress stops moving is aborted with a clear error and retried", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      quiet: { kind: "directory", path: dir, stall_timeout_minutes: 0.01 }, // 0.6 s
    }, { worker_max_attempts: 2, retry_backoff_ms: 60_000 });
    try {
      const job = await services.store.enqueue({
        kind: "backup",
        client_name: "quiet",
        max_attempts: 2,
      });
      const claimed = (await services.store.claim({ owner: "t", leaseMs: 60_000 }))!;
      let ticks = 0;
      const started = Date.now();
      const out = await runAttempt(services, claimed, {
        controller: new AbortController(),
        heartbeatMs: 100,
        // Moves for a second (the watchdog must not fire), then hangs until aborted.
        execute: async (_s, _j, hooks) => {
          while (Date.now() - started < 1000) {
            hooks.progress({ bytes_done: ++ticks, phase: "dumping" });
            await new Promise((r) => setTimeout(r, 100));
          }
          await new Promise((_, reject) =>
            hooks.signal.addEventListener("abort", () => reject(hooks.signal.reason))
          );
          return {};
        },
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 1500 && elapsed < 5000, `aborted after ${elapsed} ms`);
      assert.equal(out.id, job.id);
      assert.equal(out.status, "pending", "retried, not dead-lettered");
      assert.equal(out.attempts, 1);
      assert.equal(
        out.error,
        "Stalled: no progress for 0.01 minutes (stall_timeout_minutes), so the attempt was aborted during dumping; a lock held on the source or an endpoint that stopped answering are the usual causes",
      );
    } finally {
      await services.store.close();
    }
  });
});

Deno.test({
  name:
    "stall: pg_dump blocked on a table lock is aborted, and the retry succeeds once the lock is gone",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await requirePostgres();
  await withDatabase(async (db, sql) => {
    await sql`CREATE TABLE t (id int)`;
    await sql`INSERT INTO t SELECT generate_series(1, 100)`;
    await withTempDir(async (dir) => {
      const services = await testServices(dir, {
        locked: {
          kind: "postgres",
          url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}`,
          stall_timeout_minutes: 0.05, // 3 s
        },
      }, { worker_max_attempts: 2, retry_backoff_ms: 200, worker_lease_ttl_minutes: 0.5 });
      // Another session holds ACCESS EXCLUSIVE: pg_dump's ACCESS SHARE waits for it.
      const holder = pg(db);
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const holding = holder.begin(async (tx) => {
        await tx`LOCK TABLE t IN ACCESS EXCLUSIVE MODE`;
        await released;
      });
      const pool = new WorkerPool(services, { concurrency: 1, pollMs: 100 });
      try {
        const job = await services.store.enqueue({
          kind: "backup",
          client_name: "locked",
          max_attempts: 2,
        });
        pool.start();
        const retried = await waitFor(
          async () => {
            const j = await services.store.get(job.id);
            return j && j.attempts === 1 && j.status === "pending" ? j : null;
          },
          "the stalled attempt to be aborted",
          60_000,
        );
        assert.match(retried.error!, /^Stalled: no progress for 0\.05 minutes/);
        release();
        await holding;
        const done = await waitFor(
          async () => {
            const j = await services.store.get(job.id);
            return j && (j.status === "completed" || j.status === "failed") ? j : null;
          },
          "the retry",
          60_000,
        );
        assert.equal(done.status, "completed", done.error ?? "");
        assert.equal(done.attempts, 2);
      } finally {
        release();
        await holding.catch(() => {});
        await pool.stop(1000);
        await holder.end();
        await services.store.close();
      }
    });
  });
});

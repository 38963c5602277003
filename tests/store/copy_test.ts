import assert from "node:assert/strict";
import { join } from "node:path";
import type { Job, Schedule } from "../../src/jobs/types.ts";
import type { Delivery } from "../../src/notify/delivery.ts";
import { JsonlStore } from "../../src/store/jsonl.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { JobStore } from "../../src/store/store.ts";
import { storeUrl } from "../helpers/cluster.ts";
import { spawnDaemon } from "../helpers/daemon.ts";
import { pg as pgAdmin, withDatabase } from "../helpers/pg.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";

const slow = { sanitizeResources: false, sanitizeOps: false };

/** A store with every kind of record: each status, a result, an error, a key, a schedule, a gap. */
async function fill(store: JobStore): Promise<void> {
  const lease = { owner: "w", leaseMs: 60_000 };
  const s = await store.createSchedule({
    client_name: "files",
    cron: "0 2 * * *",
    timezone: "Europe/Paris",
    label: "nightly",
    enabled: true,
    retention: { keep_daily: 7, keep_last: 2 },
    next_run_at: Date.parse("2026-12-01T01:00:00Z"),
  });
  await store.createSchedule({
    client_name: "files",
    cron: "*/5 * * * *",
    timezone: "UTC",
    label: "off",
    enabled: false,
    retention: {},
    next_run_at: null,
  });
  const done = await store.enqueue({
    kind: "backup",
    client_name: "files",
    label: "nightly",
    max_attempts: 3,
    schedule_id: s.id,
  }, { claimAs: lease });
  await store.update(done.id, done.lease_token!, {
    key: "backups/files/20261130T020000000Z-nightly.tar.gz",
    progress: { bytes_done: 10, bytes_total: 10, phase: "upload" },
  });
  await store.complete(done.id, done.lease_token!, { size_bytes: 10, sha256: "ab" });
  const gone = await store.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 });
  await store.deleteJob(gone.id);
  const failed = await store.enqueue({
    kind: "verify",
    client_name: "files",
    max_attempts: 1,
    key: "k",
  }, {
    claimAs: lease,
  });
  await store.fail(failed.id, failed.lease_token!, "checksum mismatch", { retryDelayMs: 0 });
  const cancelled = await store.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 });
  await store.requestCancel(cancelled.id);
  await store.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 }, {
    claimAs: lease,
  });
  await store.enqueue({
    kind: "restore",
    client_name: "files",
    max_attempts: 1,
    params: { target: "/restore/here", replace: true },
    run_after: Date.parse("2027-01-01T00:00:00Z"),
  });
  await store.enqueue({
    kind: "prune",
    client_name: null,
    max_attempts: 1,
    params: { dry_run: false },
  });
  // The outbox: one pruned (a gap in the ids), one delivered, one retrying, one dead, two never tried.
  const dlv = (key: string, channel = "hook") => ({
    channel,
    event: "job_failed",
    dedupe_key: key,
    payload: { job_id: failed.id, client: "files" },
    max_attempts: 2,
  });
  const pruned = (await store.enqueueDelivery(dlv("test:1"))).delivery;
  await store.settleDelivery(pruned.id, { ok: true });
  await store.deleteDeliveriesBefore(Number.MAX_SAFE_INTEGER);
  const sent = (await store.enqueueDelivery(dlv(`job_failed:${failed.id}:1`))).delivery;
  await store.claimDeliveries(10, 60_000);
  await store.settleDelivery(sent.id, { ok: true });
  const retrying = (await store.enqueueDelivery(dlv(`job_failed:${failed.id}:1`, "mail")))
    .delivery;
  await store.settleDelivery(retrying.id, { ok: false, error: "550 refused", retryDelayMs: 5000 });
  const dead = (await store.enqueueDelivery(dlv("backup_overdue:files:never"))).delivery;
  await store.settleDelivery(dead.id, { ok: false, error: "timeout", retryDelayMs: 0 });
  await store.settleDelivery(dead.id, { ok: false, error: "timeout", retryDelayMs: 0 });
  await store.enqueueDelivery(dlv("job_started:9:1"));
  await store.enqueueDelivery(dlv("job_started:9:1", "mail"));
}

async function contents(
  store: JobStore,
): Promise<{ jobs: Job[]; schedules: Schedule[]; deliveries: Delivery[] }> {
  const jobs = (await store.list({}, { limit: 1000 })).jobs;
  return {
    jobs,
    schedules: await store.listSchedules(),
    deliveries: await store.listDeliveries({}, 1000),
  };
}

Deno.test({
  name:
    "store copy: sqlite into postgres and postgres into jsonl keep every job and schedule, ids included",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const sqlitePath = join(dir, "cairn.db");
        const src = await SqliteStore.open(sqlitePath);
        await fill(src);
        const expected = await contents(src);
        await src.close();
        assert.equal(expected.jobs.length, 6);
        assert.deepEqual(expected.deliveries.map((d) => [d.id, d.status]), [
          [6, "pending"],
          [5, "pending"],
          [4, "dead"],
          [3, "pending"],
          [2, "delivered"],
        ]);

        const toPg = await cairn([
          "store",
          "copy",
          "--from",
          `sqlite:${sqlitePath}`,
          "--to",
          storeUrl(database),
        ]);
        assert.equal(toPg.code, 0, toPg.stderr);
        assert.equal(
          toPg.stdout.trim(),
          `Copied 6 job(s), 2 schedule(s) and 5 notification delivery record(s) from sqlite:${sqlitePath} to ${
            storeUrl(database)
          }`,
        );
        const pg = await PostgresStore.open(storeUrl(database));
        assert.deepEqual(await contents(pg), expected);
        const next = await pg.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 });
        assert.equal(next.id, 8, "ids continue after the copied ones");
        await pg.deleteJob(next.id);
        assert.equal(
          (await pg.enqueueDelivery({ ...expected.deliveries[0], payload: {} })).created,
          false,
          "a copied dedupe key still stops a second send",
        );
        const nextDelivery = await pg.enqueueDelivery({
          ...expected.deliveries[0],
          dedupe_key: "new",
        });
        // > 6, not = 7: the refused INSERT … ON CONFLICT above took a sequence value.
        assert.ok(nextDelivery.delivery.id > 6, "delivery ids continue after the copied ones");
        await pg.close();
        const cleanup = pgAdmin(database);
        await cleanup.unsafe(`DELETE FROM cairn_deliveries WHERE id = ${nextDelivery.delivery.id}`);
        await cleanup.end();
        const pgAgain = await PostgresStore.open(storeUrl(database));
        assert.deepEqual(await contents(pgAgain), expected);
        await pgAgain.close();

        const jsonlPath = join(dir, "back", "jobs.jsonl");
        const back = await cairn([
          "store",
          "copy",
          "--from",
          storeUrl(database),
          "--to",
          `jsonl:${jsonlPath}`,
          "--json",
        ]);
        assert.equal(back.code, 0, back.stderr);
        assert.deepEqual(JSON.parse(back.stdout), {
          from: storeUrl(database),
          to: `jsonl:${jsonlPath}`,
          jobs: 6,
          schedules: 2,
          deliveries: 5,
        });
        const jsonl = await JsonlStore.open(jsonlPath);
        assert.deepEqual(await contents(jsonl), expected);
        assert.equal(
          (await jsonl.enqueue({ kind: "prune", client_name: null, max_attempts: 1 })).id,
          8,
        );
        const fresh = await jsonl.enqueueDelivery({ ...expected.deliveries[0], dedupe_key: "new" });
        assert.equal(fresh.delivery.id, 7, "delivery ids continue after the copied ones");
        await jsonl.close();
      })
    ),
});

Deno.test({
  name:
    "store copy: refuses while a daemon runs on the source (sqlite: a daemon process; postgres: a live node), and into a store that is not empty",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const config = await writeConfig(dir, {});
        const daemon = await spawnDaemon(config);
        let stopped = false;
        try {
          const refused = await cairn([
            "store",
            "copy",
            "--from",
            config,
            "--to",
            storeUrl(database),
          ]);
          assert.equal(refused.code, 2);
          assert.match(
            refused.stderr,
            /The job store sqlite:.*cairn\.db is in use by a cairn daemon \(node [^,]+, pid \d+ on host .*\): stop the daemon or let the job finish before copying the store/s,
          );
          await daemon.stop();
          stopped = true;
          const ok = await cairn(["store", "copy", "--from", config, "--to", storeUrl(database)]);
          assert.equal(ok.code, 0, ok.stderr);
          assert.match(ok.stdout, /Copied 0 job\(s\), 0 schedule\(s\) and 0 notification/);
        } finally {
          if (!stopped) await daemon.stop();
        }

        const pg = await PostgresStore.open(storeUrl(database));
        await pg.enqueue({ kind: "backup", client_name: "files", max_attempts: 1 });
        await pg.registerNode({ name: "db-node-1", owner: "cairn1 x/y/z 1 1 n", clients: [] });
        const other = join(dir, "other.db");
        const live = await cairn([
          "store",
          "copy",
          "--from",
          storeUrl(database),
          "--to",
          `sqlite:${other}`,
        ]);
        assert.equal(live.code, 2);
        assert.match(
          live.stderr,
          /A cairn daemon is running on the job store .* \(node db-node-1, last heartbeat \d+ s ago\)/,
        );
        await pg.nodeStopped({ name: "db-node-1", owner: "cairn1 x/y/z 1 1 n" });
        await pg.close();

        const full = await cairn([
          "store",
          "copy",
          "--from",
          `sqlite:${other}`,
          "--to",
          storeUrl(database),
        ]);
        assert.equal(full.code, 2);
        assert.match(
          full.stderr,
          /already holds 1 job\(s\) and 0 schedule\(s\): copy into an empty store/s,
        );
      })
    ),
});

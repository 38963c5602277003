import assert from "node:assert/strict";
import { join } from "node:path";
import * as state from "../../src/jobs/state.ts";
import { manifestKey } from "../../src/repository/keys.ts";
import { sweepOrphanArtifacts } from "../../src/runtime/recover.ts";
import { testServices } from "../helpers/services.ts";
import { filesUnder } from "../helpers/crash.ts";
import { spawnDaemon, waitFor } from "../helpers/daemon.ts";
import { withTempDir, writeConfig } from "../helpers/tmp.ts";

const bytes = (s: string) => ReadableStream.from([new TextEncoder().encode(s)]);

Deno.test("state: a backup with a fixed key is settled from the repository, never blindly", () => {
  const now = 1_000_000;
  const base = state.claim(
    state.newJob(1, { kind: "backup", client_name: "c", max_attempts: 1 }, 0),
    0,
    "o",
    "t",
    10,
  );
  const keyed = { ...base, key: "backups/c/20260101T000000000Z-x.sqlite" };
  assert.equal(state.needsRepositoryToSettle(base), false);
  assert.equal(state.needsRepositoryToSettle(keyed), true);
  assert.equal(state.settleAbandoned(base, now)?.status, "failed", "no key: nothing was written");
  assert.equal(state.settleAbandoned(keyed, now), null, "a key: the repository decides");
  const done = state.settleFromRepository(keyed, now, { result: { key: keyed.key } });
  assert.equal(done.status, "completed");
  assert.equal(done.lease_owner, null);
  assert.equal(state.settleFromRepository(keyed, now, { error: "gone" }).status, "failed");
  assert.equal(
    state.settleFromRepository({ ...keyed, cancel_requested: true }, now, { error: "gone" }).status,
    "cancelled",
  );
  const expired = state.expireLease({ ...keyed, lease_expires_at: now + 60_000 }, now);
  assert.equal(expired.lease_expires_at, now);
  assert.equal(state.isLeaseExpired(expired, now), true);
});

Deno.test("sweep: an artifact without a manifest goes when no live job holds its key; young unclaimed ones and live jobs' stay", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { c: { kind: "directory", path: dir } });
    try {
      const { store, repository } = services;
      const key = (n: number) => `backups/c/2026010${n}T000000000Z-manual.tar.gz`;
      for (const n of [1, 2, 3, 4, 5]) await repository.put(key(n), bytes(`artifact ${n}`));
      await repository.put(manifestKey(key(5)), bytes("{}"));
      // 1: no job, written just now (a job on another store could be writing it): kept.
      // 2: no job, older than the lease TTL: removed.
      const old = new Date(Date.now() - 16 * 60_000);
      await Deno.utime(repository.localPath(key(2))!, old, old);
      // 3: held by a job running under this process's live lease: kept.
      const live = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
        claimAs: { owner: services.owner, leaseMs: 60_000 },
      });
      await store.update(live.id, live.lease_token!, { key: key(3) });
      // 4: held by a job that failed: removed at once.
      const failed = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
        claimAs: { owner: services.owner, leaseMs: 60_000 },
      });
      await store.update(failed.id, failed.lease_token!, { key: key(4) });
      await store.fail(failed.id, failed.lease_token!, "boom", { retryDelayMs: 0 });
      // 5: has a manifest: a backup, never touched.
      const removed = await sweepOrphanArtifacts(services);
      assert.deepEqual(removed.sort(), [key(2), key(4)]);
      const left = (await filesUnder(join(dir, "repo", "backups"))).map((f) => `backups/${f}`);
      assert.deepEqual(left, [key(1), key(3), key(5), manifestKey(key(5))]);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test({
  name:
    "sweep: the daemon sweeps periodically, not only at start: an orphan and a dead process's scratch appearing later are removed and logged",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, {
        clients: { c: { kind: "directory", path: dir } },
        backup: { sweep_interval_ms: 1000 },
      });
      const d = await spawnDaemon(config);
      try {
        const key = "backups/c/20260101T000000000Z-manual.tar.gz";
        const path = join(dir, "repo", ...key.split("/"));
        await Deno.mkdir(join(dir, "repo", "backups", "c"), { recursive: true });
        await Deno.writeTextFile(path, "left by a crash");
        const old = new Date(Date.now() - 16 * 60_000);
        await Deno.utime(path, old, old);
        const child = new Deno.Command("true").spawn();
        await child.status;
        const deadScratch = join(dir, "scratch", `${child.pid}-4242`);
        await Deno.mkdir(join(deadScratch, "sqlite-x"), { recursive: true });
        await Deno.writeTextFile(join(deadScratch, "sqlite-x", "snapshot.sqlite"), "copy");
        // The files go first; the sweep's log lines reach d.logs a moment later.
        await waitFor(
          async () =>
            !(await Deno.stat(path).catch(() => null)) &&
            !(await Deno.stat(deadScratch).catch(() => null)) &&
            d.logs.some((l) => l.includes('"when":"periodic"')),
          "the periodic sweep",
          10_000,
        );
        assert.ok(d.logs.some((l) =>
          l.includes("Removed an artifact without a manifest") &&
          l.includes(key)
        ));
        assert.ok(d.logs.some((l) => l.includes("Removed scratch files a dead process left")));
        assert.ok(d.logs.some((l) => l.includes('"when":"periodic"')));
      } finally {
        await d.stop();
      }
    });
  },
});

Deno.test("settle: a backup killed on its last attempt is completed when its manifest exists, failed (artifact removed) when not; a job command settles them too", async () => {
  const { formatOwner, initProcessId } = await import("../../src/io/process_id.ts");
  const { cairn } = await import("../helpers/tmp.ts");
  await withTempDir(async (dir) => {
    const me = await initProcessId();
    const child = new Deno.Command("true").spawn();
    await child.status;
    const deadOwner = formatOwner({ host: me.host, pid: child.pid, start: "12345" }, "gone");
    const config = await writeConfig(dir, { clients: { c: { kind: "directory", path: dir } } });
    const services = await testServices(dir, { c: { kind: "directory", path: dir } });
    const { store, repository } = services;
    const key = (n: number) => `backups/c/2026010${n}T000000000Z-manual.tar.gz`;
    const stuck = async (n: number) => {
      const job = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
        claimAs: { owner: deadOwner, leaseMs: 15 * 60_000 },
      });
      await store.update(job.id, job.lease_token!, { key: key(n) });
      await repository.put(key(n), bytes(`artifact ${n}`));
      return job;
    };
    const withBackup = await stuck(1);
    const put = await repository.stat(key(1));
    const { createHash } = await import("node:crypto");
    await repository.put(
      manifestKey(key(1)),
      bytes(JSON.stringify({
        format_version: 1,
        key: key(1),
        client_name: "c",
        kind: "directory",
        label: "manual",
        created_at: "2026-01-01T00:00:00.000Z",
        size_bytes: put!.size,
        sha256: createHash("sha256").update("artifact 1").digest("hex"),
        job_id: withBackup.id,
        schedule_id: null,
        tool_versions: {},
        facts: {},
      })),
    );
    const bare = await stuck(2);
    await store.close();
    // Any job command on this host settles them (the daemon's sweep does the same).
    const out = await cairn(["backup", "c", "--config", config]);
    assert.equal(out.code, 0, out.stderr);
    const reopened = await testServices(dir, { c: { kind: "directory", path: dir } });
    try {
      const a = (await reopened.store.get(withBackup.id))!;
      assert.equal(a.status, "completed", a.error ?? "");
      assert.equal(a.result?.key, key(1));
      const b = (await reopened.store.get(bare.id))!;
      assert.equal(b.status, "failed");
      assert.match(b.error!, /lost its lease on attempt 1 of 1/);
      assert.equal(await reopened.repository.stat(key(2)), null, "its bare artifact is gone");
      assert.ok(await reopened.repository.stat(key(1)), "the completed job's backup stays");
    } finally {
      await reopened.store.close();
    }
  });
});

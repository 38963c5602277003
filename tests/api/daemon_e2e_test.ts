import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { cairn, makeTree, randomBytes, withTempDir, writeConfig } from "../helpers/tmp.ts";
import { json, spawnDaemon, waitFor, waitForJob } from "../helpers/daemon.ts";

const KEY = "test-admin-key-42";
const enc = encodeURIComponent;

/** A directory client whose backup takes seconds: gzip -9 over random bytes, on purpose. */
function SLOW(path: string) {
  return { kind: "directory", path, compression: "gzip", compression_level: 9 };
}

async function bigDir(dir: string, mib: number): Promise<string> {
  const src = join(dir, "big");
  await Deno.mkdir(src, { recursive: true });
  const f = await Deno.open(join(src, "blob.bin"), { write: true, create: true });
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < mib; i++) await f.write(chunk);
  f.close();
  return src;
}

function daemonConfig(
  dir: string,
  clients: Record<string, unknown>,
  backup: Record<string, unknown> = {},
) {
  return writeConfig(dir, { clients, server: { listen: "127.0.0.1:0", admin_key: KEY }, backup });
}

Deno.test("e2e: backup -> poll -> list -> download -> restore -> verify -> delete, over HTTP only", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const d = await spawnDaemon(
      await daemonConfig(dir, { files: { kind: "directory", path: src } }),
      { adminKey: KEY },
    );
    try {
      const queued = await d.api("/admin/backups", {
        method: "POST",
        json: { label: "e2e" },
        headers: { "x-athena-client": "files" },
      });
      assert.equal(queued.status, 202);
      const q = await json(queued);
      assert.equal(q.status, "success");
      assert.deepEqual(Object.keys(q.data).sort(), ["client_name", "job_id", "status"]);
      assert.equal(q.data.client_name, "files", "x-athena-client supplied the client");
      const job = await waitForJob(d, q.data.job_id, ["completed", "failed"]);
      assert.equal(job.status, "completed", job.error);
      assert.equal(job.progress.bytes_done > 0, true);

      const list = (await json(await d.api("/admin/backups?client_name=files&limit=10"))).data;
      assert.equal(list.backups.length, 1);
      const backup = list.backups[0];
      assert.equal(backup.key, job.result.key);
      assert.equal(backup.job_id, job.id);

      const dl = await d.api(`/admin/backups/${enc(backup.key)}/download`);
      assert.equal(dl.status, 200);
      assert.equal(dl.headers.get("x-checksum-sha256"), backup.sha256);
      assert.equal(Number(dl.headers.get("content-length")), backup.size_bytes);
      const bytes = new Uint8Array(await dl.arrayBuffer());
      assert.equal(createHash("sha256").update(bytes).digest("hex"), backup.sha256);
      const ranged = await d.api(`/admin/backups/${enc(backup.key)}/download`, {
        headers: { range: "bytes=0-9" },
      });
      assert.equal(ranged.status, 206);
      assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), bytes.slice(0, 10));

      const target = join(dir, "restored");
      const r = await json(
        await d.api(`/admin/backups/${enc(backup.key)}/restore`, {
          method: "POST",
          json: { client_name: "files", target },
        }),
      );
      assert.deepEqual(Object.keys(r.data).sort(), ["client_name", "job_id", "key", "status"]);
      assert.equal(
        (await waitForJob(d, r.data.job_id, ["completed", "failed"])).status,
        "completed",
      );
      assert.equal(await Deno.readTextFile(join(target, "a.txt")), "alpha\n");

      const v = await d.api(`/admin/backups/${enc(backup.key)}/verify`, { method: "POST" });
      assert.equal(v.status, 202);
      const vj = await waitForJob(d, (await json(v)).data.job_id, ["completed", "failed"]);
      assert.equal(vj.status, "completed", vj.error);
      assert.equal(vj.result.sha256_ok, true);

      const del = await d.api(`/admin/backups/${enc(backup.key)}`, { method: "DELETE" });
      assert.equal(del.status, 200);
      assert.equal((await json(await d.api("/admin/backups"))).data.backups.length, 0);
      assert.equal((await d.api(`/admin/backups/${enc(backup.key)}/download`)).status, 404);

      const status = (await json(await d.api("/admin/status"))).data;
      assert.equal(status.jobs.by_status.completed, 3);
      assert.equal(status.last_success.files.job_id, job.id);
      const clients = (await json(await d.api("/admin/clients"))).data.clients;
      assert.deepEqual(clients.map((c: { name: string }) => c.name), ["files"]);
      assert.ok(
        d.logs.some((l) =>
          l.includes('"msg":"request"') && l.includes('"request_id"') && l.includes('"duration_ms"')
        ),
      );
      assert.ok(d.logs.some((l) => l.includes('"msg":"Job completed"')));
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });
});

Deno.test("e2e: auth, validation, not-found, INVALID_KEY on every key route, 413", async () => {
  await withTempDir(async (dir) => {
    const d = await spawnDaemon(
      await writeConfig(dir, {
        clients: { files: { kind: "directory", path: dir } },
        server: { listen: "127.0.0.1:0", admin_key: KEY, max_body_bytes: 2048 },
      }),
      { adminKey: KEY },
    );
    try {
      const health = await d.api("/admin/health", { key: null });
      assert.equal(health.status, 200);
      const h = await json(health);
      assert.equal(h.data.status, "healthy");
      assert.ok(h.data.version && h.data.timestamp);

      for (
        const [path, method] of [
          ["/admin/status", "GET"],
          ["/admin/backups", "GET"],
          ["/admin/backups", "POST"],
          ["/admin/backups/jobs", "GET"],
          ["/admin/clients", "GET"],
        ]
      ) {
        const none = await d.api(path, { method, key: null });
        assert.equal(none.status, 401, `${method} ${path} without a key`);
        assert.equal((await json(none)).code, "UNAUTHORIZED");
        assert.equal(
          (await d.api(path, { method, key: "wrong" })).status,
          401,
          `${method} ${path} with a wrong key`,
        );
      }
      const viaHeader = await d.api("/admin/status", {
        key: null,
        headers: { "x-athena-admin-key": KEY },
      });
      assert.equal(viaHeader.status, 200);

      const bad = async (path: string, init: RequestInit & { json?: unknown }, field: string) => {
        const res = await d.api(path, init);
        const body = await json(res);
        assert.equal(res.status, 400, `${path}: ${JSON.stringify(body)}`);
        assert.equal(body.code, "VALIDATION_FAILED");
        assert.ok(
          JSON.stringify(body.details).includes(field),
          `${path} names ${field}: ${JSON.stringify(body.details)}`,
        );
        assert.equal(body.status, "error");
      };
      await bad("/admin/backups", {
        method: "POST",
        body: "{not json",
        headers: { "content-type": "application/json" },
      }, "body");
      await bad(
        "/admin/backups",
        { method: "POST", json: { client_name: "files", surprise: 1 } },
        "surprise",
      );
      await bad("/admin/backups", {
        method: "POST",
        json: { client_name: "files", label: "Not OK" },
      }, "label");
      await bad("/admin/backups/jobs?limit=abc", {}, "limit");
      await bad("/admin/backups/jobs?status=bogus", {}, "status");
      await bad("/admin/backups/jobs/abc", {}, "path");
      await bad("/admin/backups/schedules", {
        method: "POST",
        json: { client_name: "files", cron: "61 * * * *" },
      }, "cron");
      await bad("/admin/backups/schedules", {
        method: "POST",
        json: { client_name: "files", cron: "* * * * *", timezone: "Mars/Olympus" },
      }, "timezone");
      await bad("/admin/backups/schedules", {
        method: "POST",
        json: { client_name: "files", cron: "* * * * *", retention: { keep_last: -1 } },
      }, "retention.keep_last");
      await bad("/admin/backups/dlq/cleanup", { method: "POST", json: {} }, "older_than_days");

      const unknown = await d.api("/admin/backups", {
        method: "POST",
        json: { client_name: "ghost" },
      });
      assert.equal(unknown.status, 400);
      assert.equal((await json(unknown)).code, "UNKNOWN_CLIENT");
      // No name at all is a missing field, not an unknown client "".
      const noClient = await d.api("/admin/backups", { method: "POST", json: {} });
      assert.equal(noClient.status, 400);
      assert.equal((await json(noClient)).details[0].path, "client_name");

      const nf = async (path: string, method: string, code: string) => {
        const res = await d.api(path, { method });
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.equal((await json(res)).code, code);
      };
      await nf("/admin/backups/jobs/999999", "GET", "JOB_NOT_FOUND");
      await nf("/admin/backups/jobs/999999/cancel", "POST", "JOB_NOT_FOUND");
      await nf("/admin/backups/schedules/999999", "DELETE", "SCHEDULE_NOT_FOUND");
      await nf("/admin/backups/schedules/999999", "PATCH", "SCHEDULE_NOT_FOUND");
      await nf("/admin/backups/dlq/999999", "DELETE", "JOB_NOT_FOUND");
      await nf("/admin/backups/dlq/999999/requeue", "POST", "JOB_NOT_FOUND");
      const missing = "backups/files/20261121T020000000Z-manual.tar.gz";
      await nf(`/admin/backups/${enc(missing)}/download`, "GET", "BACKUP_NOT_FOUND");
      await nf(`/admin/backups/${enc(missing)}`, "DELETE", "BACKUP_NOT_FOUND");
      await nf(`/admin/backups/${enc(missing)}/restore`, "POST", "BACKUP_NOT_FOUND");
      await nf(`/admin/backups/${enc(missing)}/verify`, "POST", "BACKUP_NOT_FOUND");
      await nf("/admin/nothing-here", "GET", "NOT_FOUND");

      const traversals = [
        enc("../../etc/passwd"),
        enc("backups/files/../../../etc/passwd"),
        enc("/etc/passwd"),
        "backups%2Ffiles%2F20261121T020000000Z-manual.tar.gz%00",
        enc("backups/files/..%2F..%2Fx.tar.gz"),
        "..%2F..%2F..%2Fetc%2Fshadow",
      ];
      for (const k of traversals) {
        for (
          const [suffix, method] of [["/download", "GET"], ["", "DELETE"], ["/restore", "POST"], [
            "/verify",
            "POST",
          ]]
        ) {
          const res = await d.api(`/admin/backups/${k}${suffix}`, { method });
          const body = await json(res);
          assert.equal(res.status, 400, `${method} ${k}${suffix}: ${JSON.stringify(body)}`);
          assert.equal(body.code, "INVALID_KEY");
        }
      }

      const big = await d.api("/admin/backups", {
        method: "POST",
        body: JSON.stringify({ client_name: "files", label: "x".repeat(5000) }),
        headers: { "content-type": "application/json" },
      });
      assert.equal(big.status, 413);
      assert.equal((await json(big)).code, "PAYLOAD_TOO_LARGE");
    } finally {
      await d.stop();
    }
  });
});

Deno.test("e2e: cancel a pending job and a running one", async () => {
  await withTempDir(async (dir) => {
    const src = await bigDir(dir, 300);
    const d = await spawnDaemon(
      await daemonConfig(dir, { big: SLOW(src) }, { worker_concurrency: 1 }),
      { adminKey: KEY },
    );
    try {
      const first = (await json(
        await d.api("/admin/backups", { method: "POST", json: { client_name: "big" } }),
      )).data.job_id;
      const second = (await json(
        await d.api("/admin/backups", { method: "POST", json: { client_name: "big" } }),
      )).data.job_id;
      await waitForJob(d, first, ["running"]);
      const pending = await d.api(`/admin/backups/jobs/${second}/cancel`, { method: "POST" });
      assert.equal(pending.status, 200);
      assert.equal((await json(pending)).data.status, "cancelled");
      await waitFor(
        async () =>
          (await json(await d.api(`/admin/backups/jobs/${first}`))).data.progress?.bytes_done > 0,
        "progress",
      );
      const running = await json(
        await d.api(`/admin/backups/jobs/${first}/cancel`, { method: "POST" }),
      );
      const final = running.data.status === "cancelled"
        ? running.data
        : await waitForJob(d, first, ["cancelled"]);
      assert.equal(final.status, "cancelled");
      assert.deepEqual((await json(await d.api("/admin/backups"))).data.backups, []);
      assert.deepEqual(
        [...Deno.readDirSync(join(dir, "repo", ".tmp"))],
        [],
        "partial output removed",
      );
      const again = await d.api(`/admin/backups/jobs/${first}/cancel`, { method: "POST" });
      assert.equal(again.status, 409);
      assert.equal((await json(again)).code, "JOB_NOT_CANCELLABLE");
    } finally {
      await d.stop();
    }
  });
});

Deno.test("e2e: a failed job lands in the DLQ and is requeued, listed, counted and cleaned up", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "appears-later");
    const d = await spawnDaemon(
      await daemonConfig(dir, { late: { kind: "directory", path: src } }, {
        worker_max_attempts: 2,
        retry_backoff_ms: 50,
      }),
      { adminKey: KEY },
    );
    try {
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(
          (await json(
            await d.api("/admin/backups", { method: "POST", json: { client_name: "late" } }),
          )).data.job_id,
        );
      }
      for (const id of ids) {
        const j = await waitForJob(d, id, ["failed", "completed"]);
        assert.equal(j.status, "failed");
        // A missing directory is permanent: dead-lettered at the first of 2 attempts.
        assert.equal(j.attempts, 1);
        assert.match(j.error, /does not exist/);
      }
      const dlq = (await json(
        await d.api("/admin/backups/dlq?limit=2&offset=0&client_name=late&kind=backup"),
      )).data;
      assert.equal(dlq.total_count, 3);
      assert.equal(dlq.jobs.length, 2);
      assert.equal(dlq.has_more, true);
      const stats = (await json(await d.api("/admin/backups/dlq/stats"))).data;
      assert.equal(stats.total, 3);
      assert.deepEqual(stats.by_kind, { backup: 3 });
      assert.deepEqual(stats.by_client, { late: 3 });
      assert.ok(stats.oldest_failed_at <= stats.newest_failed_at);

      await makeTree(src);
      const one = await json(
        await d.api(`/admin/backups/dlq/${ids[0]}/requeue`, { method: "POST" }),
      );
      assert.equal(one.data.status, "pending");
      assert.equal(one.data.attempts, 0);
      assert.equal((await waitForJob(d, ids[0], ["completed", "failed"])).status, "completed");
      const notFailed = await d.api(`/admin/backups/dlq/${ids[0]}/requeue`, { method: "POST" });
      assert.equal(notFailed.status, 409);

      const del = await d.api(`/admin/backups/dlq/${ids[1]}`, { method: "DELETE" });
      assert.equal(del.status, 200);
      assert.equal((await d.api(`/admin/backups/jobs/${ids[1]}`)).status, 404);
      const bulk = (await json(
        await d.api("/admin/backups/dlq/requeue", {
          method: "POST",
          json: { client_name: "late" },
        }),
      )).data;
      assert.equal(bulk.requeued, 1);
      assert.equal((await waitForJob(d, ids[2], ["completed", "failed"])).status, "completed");

      // A new failure, then cleanup by age: 0 days removes it, a large age keeps it.
      await Deno.remove(src, { recursive: true });
      const failing = (await json(
        await d.api("/admin/backups", { method: "POST", json: { client_name: "late" } }),
      )).data.job_id;
      await waitForJob(d, failing, ["failed"]);
      assert.equal(
        (await json(
          await d.api("/admin/backups/dlq/cleanup", {
            method: "POST",
            json: { older_than_days: 30 },
          }),
        )).data.deleted,
        0,
      );
      assert.equal(
        (await json(
          await d.api("/admin/backups/dlq/cleanup", {
            method: "POST",
            json: { older_than_days: 0 },
          }),
        )).data.deleted,
        1,
      );
    } finally {
      await d.stop();
    }
  });
});

Deno.test("e2e: a 6-field cron schedule fires within seconds and prunes by its policy, leaving manual backups", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const d = await spawnDaemon(
      await daemonConfig(dir, { files: { kind: "directory", path: src } }, {
        schedule_worker_poll_ms: 1000,
      }),
      { adminKey: KEY },
    );
    try {
      const manual = (await json(
        await d.api("/admin/backups", { method: "POST", json: { client_name: "files" } }),
      )).data.job_id;
      await waitForJob(d, manual, ["completed"]);
      const created = await d.api("/admin/backups/schedules", {
        method: "POST",
        json: {
          client_name: "files",
          cron: "*/1 * * * * *",
          timezone: "Europe/Berlin",
          label: "every-second",
          retention: { keep_last: 2 },
        },
      });
      assert.equal(created.status, 201);
      const schedule = (await json(created)).data;
      assert.equal(schedule.timezone, "Europe/Berlin");
      assert.ok(schedule.next_run_at);
      const scheduledBackups = async () =>
        (await json(await d.api("/admin/backups?client_name=files"))).data.backups.filter((
          b: { schedule_id: number | null },
        ) => b.schedule_id === schedule.id);
      await waitFor(
        async () => {
          const prunes =
            (await json(await d.api("/admin/backups/jobs?kind=prune&status=completed"))).data.jobs;
          return prunes.length >= 3 ? prunes : null;
        },
        "three prune runs after scheduled backups",
        40_000,
      );
      const paused = await json(
        await d.api(`/admin/backups/schedules/${schedule.id}`, {
          method: "PATCH",
          json: { enabled: false },
        }),
      );
      assert.equal(paused.data.enabled, false);
      assert.equal(paused.data.next_run_at, null);
      // Let any job already queued finish, then run one more prune to settle.
      await waitFor(
        async () =>
          (await json(await d.api("/admin/backups/jobs?status=pending"))).data.jobs.length === 0 &&
          (await json(await d.api("/admin/backups/jobs?status=running"))).data.jobs.length === 0,
        "the queue to drain",
      );
      const dry = (await json(
        await d.api("/admin/backups/prune", {
          method: "POST",
          json: { client_name: "files", dry_run: true },
        }),
      )).data;
      assert.equal(dry.dry_run, true);
      const pruneJob = await d.api("/admin/backups/prune", {
        method: "POST",
        json: { client_name: "files" },
      });
      assert.equal(pruneJob.status, 202);
      await waitForJob(d, (await json(pruneJob)).data.id, ["completed"]);
      const kept = await scheduledBackups();
      assert.equal(kept.length, 2, "keep_last 2 of this schedule");
      const all = (await json(await d.api("/admin/backups?client_name=files"))).data.backups;
      assert.ok(
        all.some((b: { job_id: number }) => b.job_id === manual),
        "the manual backup is never pruned",
      );
      const jobs = (await json(await d.api(`/admin/backups/jobs?kind=backup&limit=100`))).data.jobs;
      assert.ok(
        jobs.filter((j: { schedule_id: number | null }) => j.schedule_id === schedule.id).length >=
          3,
      );

      const listed = (await json(await d.api("/admin/backups/schedules"))).data.schedules;
      assert.equal(listed.length, 1);
      assert.ok(listed[0].last_job_id);
      assert.equal(
        (await d.api(`/admin/backups/schedules/${schedule.id}`, { method: "DELETE" })).status,
        200,
      );
      const after =
        (await json(await d.api(`/admin/backups/jobs?kind=backup&limit=100`))).data.jobs;
      assert.ok(
        after.every((j: { schedule_id: number | null }) => j.schedule_id === null),
        "history kept, schedule_id nulled",
      );
      assert.equal(after.length, jobs.length);
    } finally {
      await d.stop();
    }
  });
});

Deno.test("e2e: SIGKILL the daemon during a backup; after restart the job completes with exactly one listed backup", async () => {
  await withTempDir(async (dir) => {
    const src = await bigDir(dir, 160);
    const config = await daemonConfig(dir, { big: SLOW(src) }, {
      worker_lease_ttl_minutes: 0.05,
      worker_max_attempts: 3,
    });
    const first = await spawnDaemon(config, { adminKey: KEY });
    const id = (await json(
      await first.api("/admin/backups", { method: "POST", json: { client_name: "big" } }),
    )).data.job_id;
    await waitFor(
      async () =>
        (await json(await first.api(`/admin/backups/jobs/${id}`))).data.progress?.bytes_done > 0,
      "progress",
    );
    await first.stop("SIGKILL");
    const second = await spawnDaemon(config, { adminKey: KEY });
    try {
      const job = await waitForJob(second, id, ["completed", "failed"], 90_000);
      assert.equal(job.status, "completed", job.error);
      assert.equal(job.attempts, 2);
      const backups = (await json(await second.api("/admin/backups"))).data.backups;
      assert.equal(backups.length, 1);
      assert.equal(backups[0].key, job.result.key);
    } finally {
      await second.stop();
    }
  });
});

Deno.test("e2e: the daemon refuses a non-loopback listen address without an admin key", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, { server: { listen: "0.0.0.0:0" } });
    const r = await cairn(["daemon", "--config", config]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /server\.admin_key: required when server\.listen \(0\.0\.0\.0:0\) is not a loopback address/,
    );
  });
});

/**
 * Kill-at-the-exact-moment tests: a real `cairn daemon` is frozen (SIGSTOP) the
 * instant a file appears, checked to be in the state wanted, then killed (SIGKILL)
 * and restarted with the default 15-minute lease. Each restart must take the job
 * back at once, finish it with exactly one backup, and leave nothing behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { filesUnder, freezeWhen, openStore, repoState } from "../helpers/crash.ts";
import { json, type RunningDaemon, spawnDaemon, waitFor, waitForJob } from "../helpers/daemon.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { randomBytes, withTempDir, writeConfig } from "../helpers/tmp.ts";

const TIMEOUT = 60_000;

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}

async function smallTree(dir: string): Promise<string> {
  const src = join(dir, "src");
  await Deno.mkdir(join(src, "sub"), { recursive: true });
  await Deno.writeFile(join(src, "a.bin"), randomBytes(256 * 1024));
  await Deno.writeTextFile(join(src, "sub", "b.txt"), "bravo\n".repeat(1000));
  return src;
}

async function queue(d: RunningDaemon, client: string): Promise<number> {
  const res = await d.api("/admin/backups", { method: "POST", json: { client_name: client } });
  const body = await json(res);
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.data.job_id;
}

async function backupsOf(d: RunningDaemon, jobId: number) {
  const all = (await json(await d.api("/admin/backups?limit=1000"))).data.backups;
  return all.filter((b: { job_id: number }) => b.job_id === jobId);
}

/**
 * Queues backups until the daemon is frozen with `wanted` true (at most 6 tries: the
 * state lasts milliseconds, so a try can miss it; a miss lets that job finish).
 */
async function freezeAt(
  d: RunningDaemon,
  dir: string,
  client: string,
  match: (name: string) => boolean,
  wanted: (jobId: number, name: string) => Promise<boolean>,
): Promise<number> {
  for (let i = 0; i < 6; i++) {
    const w = freezeWhen(dir, match, () => d.pid);
    let id: number;
    try {
      id = await queue(d, client);
      const name = await timeout(w.frozen, TIMEOUT, `a file in ${dir}`);
      if (await wanted(id, name)) return id;
    } finally {
      w.close();
    }
    Deno.kill(d.pid, "SIGCONT");
    await waitForJob(d, id, ["completed"], TIMEOUT);
  }
  throw new Error("never caught the daemon in the wanted state in 6 tries");
}

Deno.test({
  name:
    "crash: killed right after the manifest is written, the restarted daemon finishes the job with its one backup",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = await smallTree(dir);
      const repo = join(dir, "repo");
      const clientDir = join(repo, "backups", "files");
      await Deno.mkdir(clientDir, { recursive: true });
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
        backup: { worker_max_attempts: 3, worker_concurrency: 1 },
      });
      const store = await openStore(dir);
      let d = await spawnDaemon(config);
      try {
        const id = await freezeAt(
          d,
          clientDir,
          "files",
          (n) => n.endsWith(".manifest.json"),
          async (jobId) => (await store.get(jobId))?.status === "running",
        );
        const key = (await store.get(id))!.key!;
        await d.stop("SIGKILL");
        const left = await repoState(repo);
        assert.ok(left.manifests.has(key), "the kill came after the manifest");
        assert.equal((await store.get(id))!.status, "running", "and before the job was completed");

        const restarted = Date.now();
        d = await spawnDaemon(config);
        const job = await waitForJob(d, id, ["completed", "failed"], 30_000);
        assert.equal(job.status, "completed", job.error);
        assert.equal(job.result.key, key, "the job's backup is the one it wrote before the kill");
        assert.ok(
          Date.now() - restarted < 20_000,
          "taken back at once, not after the 15-minute lease",
        );
        const mine = await backupsOf(d, id);
        assert.equal(mine.length, 1, `exactly one backup for job ${id}: ${JSON.stringify(mine)}`);
        assert.ok(d.logs.some((l) => l.includes("Took back a job whose worker process is gone")));
        const after = await repoState(repo);
        assert.deepEqual(after.orphans, []);
        const verify = await json(
          await d.api(`/admin/backups/${encodeURIComponent(key)}/verify`, {
            method: "POST",
            json: {},
          }),
        );
        const verified = await waitForJob(d, verify.data.job_id, ["completed", "failed"]);
        assert.equal(verified.status, "completed", verified.error);
      } finally {
        await d.stop();
        await store.close();
      }
    });
  },
});

Deno.test({
  name:
    "crash: killed right after the bare artifact appears, the start-up sweep removes it (logged) and the job makes exactly one backup",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = await smallTree(dir);
      const repo = join(dir, "repo");
      const clientDir = join(repo, "backups", "files");
      await Deno.mkdir(clientDir, { recursive: true });
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
        backup: { worker_max_attempts: 3, worker_concurrency: 1 },
      });
      const store = await openStore(dir);
      let d = await spawnDaemon(config);
      try {
        const id = await freezeAt(
          d,
          clientDir,
          "files",
          (n) => n.endsWith(".tar.zst"),
          async (_, name) => {
            const state = await repoState(repo);
            return !state.manifests.has(`backups/files/${name}`);
          },
        );
        const key = (await store.get(id))!.key!;
        await d.stop("SIGKILL");
        const left = await repoState(repo);
        assert.deepEqual(left.orphans, [key], "the kill left a bare artifact");

        d = await spawnDaemon(config);
        // The sweep ran before the daemon said it started.
        const removal = d.logs.find((l) =>
          l.includes("Removed an artifact without a manifest") && l.includes(key)
        );
        assert.ok(removal, `the removal is logged:\n${d.logs.join("\n")}`);
        const job = await waitForJob(d, id, ["completed", "failed"], 30_000);
        assert.equal(job.status, "completed", job.error);
        assert.equal(job.result.key, key, "the re-run used the job's fixed key");
        assert.equal((await backupsOf(d, id)).length, 1);
        const after = await repoState(repo);
        assert.deepEqual(after.orphans, []);
        assert.equal(after.artifacts.length, after.manifests.size);
      } finally {
        await d.stop();
        await store.close();
      }
    });
  },
});

/** The scratch directories of `pid` under the root (`<pid>-<start>`). */
async function scratchDirsOf(root: string, pid: number): Promise<string[]> {
  const names = await Array.fromAsync(Deno.readDir(root), (e) => e.name).catch(() => []);
  return names.filter((n) => n.startsWith(`${pid}-`));
}

Deno.test({
  name:
    "crash: killed during pg_dump, the restarted daemon removes the dead one's passfile at start-up; none is left after the backup",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withDatabase(async (name, sql) => {
      await sql.unsafe(
        `CREATE TABLE t AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS v FROM generate_series(1, 400000) g`,
      );
      await withTempDir(async (dir) => {
        const scratch = join(dir, "scratch");
        const config = await writeConfig(dir, {
          clients: {
            db: {
              kind: "postgres",
              // trust auth ignores it, but a password in the url makes cairn write a passfile.
              url: `postgres://postgres:not-a-real-secret@${PG_HOST}:${PG_PORT}/${name}`,
            },
          },
          backup: { worker_max_attempts: 3, worker_concurrency: 1 },
        });
        const store = await openStore(dir);
        let d = await spawnDaemon(config);
        try {
          const id = await queue(d, "db");
          const passfile = await waitFor(
            async () => {
              const files = await filesUnder(scratch);
              return files.find((f) => /\/secret-[^/]+\/secret$/.test(f)) ?? null;
            },
            "the passfile of the running pg_dump",
            TIMEOUT,
          );
          const deadPid = d.pid;
          await d.stop("SIGKILL");
          assert.equal((await scratchDirsOf(scratch, deadPid)).length, 1, passfile);

          d = await spawnDaemon(config);
          assert.deepEqual(
            await scratchDirsOf(scratch, deadPid),
            [],
            "the killed daemon's scratch (its passfile) is gone once the new one has started",
          );
          assert.ok(d.logs.some((l) => l.includes("Removed scratch files a dead process left")));
          const job = await waitForJob(d, id, ["completed", "failed"], TIMEOUT);
          assert.equal(job.status, "completed", job.error);
          assert.equal((await backupsOf(d, id)).length, 1);
          assert.deepEqual(await filesUnder(scratch), [], "no passfile after the backup");
          assert.equal((await store.get(id))!.attempts, 2);
        } finally {
          await d.stop();
          await store.close();
        }
      });
    });
  },
});

Deno.test({
  name:
    "crash: killed during a SQLite snapshot, the snapshot copy is removed at start-up and the job completes once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "app.db");
      const db = new DatabaseSync(path);
      db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)");
      const insert = db.prepare("INSERT INTO blobs (b) VALUES (?)");
      db.exec("BEGIN");
      for (let i = 0; i < 600; i++) insert.run(randomBytes(100_000));
      db.exec("COMMIT");
      db.close();
      const scratch = join(dir, "scratch");
      const config = await writeConfig(dir, {
        clients: { app: { kind: "sqlite", path } },
        backup: { worker_max_attempts: 3, worker_concurrency: 1 },
      });
      const store = await openStore(dir);
      let d = await spawnDaemon(config);
      try {
        const id = await queue(d, "app");
        await waitFor(
          async () => {
            const files = await filesUnder(scratch);
            return files.some((f) => /\/sqlite-[^/]+\/snapshot\.sqlite$/.test(f));
          },
          "the SQLite snapshot copy",
          TIMEOUT,
        );
        const deadPid = d.pid;
        await d.stop("SIGKILL");
        assert.equal((await scratchDirsOf(scratch, deadPid)).length, 1);

        d = await spawnDaemon(config);
        assert.deepEqual(await scratchDirsOf(scratch, deadPid), [], "removed at start-up");
        const job = await waitForJob(d, id, ["completed", "failed"], TIMEOUT);
        assert.equal(job.status, "completed", job.error);
        assert.equal((await backupsOf(d, id)).length, 1);
        assert.deepEqual(await filesUnder(scratch), [], "no snapshot copy after the backup");
      } finally {
        await d.stop();
        await store.close();
      }
    });
  },
});

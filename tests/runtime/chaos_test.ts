/**
 * Chaos: a real daemon is killed (SIGKILL) 30 times at random moments while it backs
 * up a directory, a PostgreSQL database and a SQLite database, and restarted each
 * time. After every restart and at the end, what the repository holds must agree
 * with the job store: one listed backup per completed job, none for a failed one,
 * no orphan, no scratch file of a dead process; at the end every backup verifies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { TERMINAL } from "../../src/jobs/types.ts";
import { filesUnder, openStore, repoState } from "../helpers/crash.ts";
import { json, type RunningDaemon, spawnDaemon, waitFor } from "../helpers/daemon.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { randomBytes, withTempDir, writeConfig } from "../helpers/tmp.ts";

const KILLS = 30;
const CLIENTS = ["files", "db", "app"] as const;

Deno.test({
  name:
    "chaos: 30 SIGKILLs at random moments during mixed backups leave one verified backup per completed job and nothing else",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const started = Date.now();
    await withDatabase(async (name, sql) => {
      await sql.unsafe(
        `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 60000) g`,
      );
      await withTempDir(async (dir) => {
        const src = join(dir, "src");
        await Deno.mkdir(join(src, "sub"), { recursive: true });
        await Deno.writeFile(join(src, "a.bin"), randomBytes(3 << 20));
        await Deno.writeTextFile(join(src, "sub", "b.txt"), "bravo\n".repeat(50_000));
        const dbPath = join(dir, "app.db");
        const db = new DatabaseSync(dbPath);
        db.exec("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)");
        const insert = db.prepare("INSERT INTO blobs (b) VALUES (?)");
        for (let i = 0; i < 60; i++) insert.run(randomBytes(50_000));
        db.close();
        const repo = join(dir, "repo");
        const scratch = join(dir, "scratch");
        const config = await writeConfig(dir, {
          clients: {
            files: { kind: "directory", path: src },
            db: {
              kind: "postgres",
              url: `postgres://postgres:chaos-pw@${PG_HOST}:${PG_PORT}/${name}`,
            },
            app: { kind: "sqlite", path: dbPath },
          },
          backup: {
            worker_max_attempts: 4,
            worker_concurrency: 2,
            sweep_interval_ms: 1000,
          },
        });
        const store = await openStore(dir);
        const figures = {
          kills: 0,
          jobs: 0,
          completed: 0,
          failed: 0,
          duplicates: 0,
          orphans_left_by_kills: 0,
          scratch_dirs_left_by_kills: 0,
          orphans_after_sweep: 0,
          scratch_left: 0,
          recover_s: [] as number[],
        };
        const failedWhy: string[] = [];
        const rng = (a: number, b: number) => a + Math.random() * (b - a);
        let d: RunningDaemon = await spawnDaemon(config);
        const allJobs = async () => (await store.list({ kind: "backup" }, { limit: 1000 })).jobs;

        /** What must hold whenever the daemon has started (its start-up sweep done). */
        const checkConsistent = async (when: string) => {
          const jobs = new Map((await allJobs()).map((j) => [j.id, j]));
          const state = await repoState(repo);
          const manifests = [...state.manifests];
          const byJob = new Map<number, string[]>();
          for (const key of manifests) {
            const m = JSON.parse(await Deno.readTextFile(join(repo, key + ".manifest.json")));
            byJob.set(m.job_id, [...(byJob.get(m.job_id) ?? []), key]);
          }
          for (const [id, keys] of byJob) {
            if (keys.length > 1) figures.duplicates++;
            assert.equal(keys.length, 1, `${when}: job ${id} has ${keys.length} backups`);
            const job = jobs.get(id);
            assert.ok(job, `${when}: a backup of unknown job ${id}`);
            assert.notEqual(job.status, "failed", `${when}: failed job ${id} has a backup`);
            assert.equal(job.key, keys[0], `${when}: job ${id}'s backup is under its fixed key`);
          }
          for (const job of jobs.values()) {
            if (job.status === "completed") {
              assert.equal(byJob.get(job.id)?.length, 1, `${when}: completed job ${job.id}`);
            }
          }
          // An artifact without a manifest is allowed only for a job running now.
          for (const key of state.orphans) {
            const holder = [...jobs.values()].find((j) => j.key === key);
            if (holder?.status !== "running") figures.orphans_after_sweep++;
            assert.equal(holder?.status, "running", `${when}: orphan ${key}`);
          }
          // Scratch: only the live daemon's own directory may exist.
          for (const f of await filesUnder(scratch)) {
            if (!f.startsWith(`${d.pid}-`)) figures.scratch_left++;
            assert.ok(f.startsWith(`${d.pid}-`), `${when}: scratch ${f} of a dead process`);
          }
        };

        try {
          while (figures.kills < KILLS) {
            const open = (await allJobs()).filter((j) => !TERMINAL.has(j.status)).length;
            for (let i = open; i < 3; i++) {
              const client = CLIENTS[Math.floor(Math.random() * CLIENTS.length)];
              const res = await d.api("/admin/backups", {
                method: "POST",
                json: { client_name: client },
              });
              assert.equal(res.status, 202);
              figures.jobs++;
            }
            await new Promise((r) => setTimeout(r, rng(50, 1200)));
            const inFlight = (await allJobs()).filter((j) => j.status === "running");
            const killedAt = Date.now();
            const deadPid = d.pid;
            await d.stop("SIGKILL");
            figures.kills++;
            // What this kill left, for the figures: the restart's sweep must remove it.
            figures.orphans_left_by_kills += (await repoState(repo)).orphans.length;
            figures.scratch_dirs_left_by_kills += (await Array.fromAsync(
              Deno.readDir(scratch),
              (e) => e.name,
            ).catch(() => [] as string[])).filter((n) => n.startsWith(`${deadPid}-`)).length;
            d = await spawnDaemon(config);
            await checkConsistent(`after kill ${figures.kills}`);
            // Recovered: every job the kill interrupted is running again or finished.
            await waitFor(
              async () => {
                for (const j of inFlight) {
                  const now = (await store.get(j.id))!;
                  if (!TERMINAL.has(now.status) && now.attempts <= j.attempts) return false;
                }
                return true;
              },
              "the interrupted jobs to run again",
              20_000,
            );
            figures.recover_s.push((Date.now() - killedAt) / 1000);
          }
          await waitFor(
            async () => (await allJobs()).every((j) => TERMINAL.has(j.status)),
            "every job to end",
            90_000,
          );
          // A last sweep has run once every job ended (the interval is 1 s).
          await new Promise((r) => setTimeout(r, 1500));
          await checkConsistent("at the end");
          const jobs = await allJobs();
          figures.completed = jobs.filter((j) => j.status === "completed").length;
          figures.failed = jobs.filter((j) => j.status === "failed").length;
          failedWhy.push(
            ...jobs.filter((j) => j.status === "failed").map((j) => `${j.id}: ${j.error}`),
          );
          const state = await repoState(repo);
          assert.deepEqual(state.orphans, [], "no orphan at the end");
          assert.deepEqual(state.tmp, [], "no partial write at the end");
          assert.deepEqual(await filesUnder(scratch), [], "no scratch file at the end");
          const backups = (await json(await d.api("/admin/backups?limit=1000"))).data.backups;
          assert.equal(backups.length, figures.completed);
          const verifies: number[] = [];
          for (const b of backups) {
            const res = await d.api(`/admin/backups/${encodeURIComponent(b.key)}/verify`, {
              method: "POST",
              json: {},
            });
            verifies.push((await json(res)).data.job_id);
          }
          await waitFor(
            async () => {
              for (const id of verifies) {
                const j = (await store.get(id))!;
                if (!TERMINAL.has(j.status)) return false;
                assert.equal(j.status, "completed", `verify job ${id}: ${j.error}`);
              }
              return true;
            },
            "every backup to verify",
            90_000,
          );
        } finally {
          await d.stop();
          await store.close();
          const r = figures.recover_s;
          console.log(
            "chaos figures:",
            JSON.stringify({
              kills: figures.kills,
              jobs: figures.jobs,
              completed: figures.completed,
              failed: figures.failed,
              duplicates: figures.duplicates,
              orphans_left_by_kills: figures.orphans_left_by_kills,
              scratch_dirs_left_by_kills: figures.scratch_dirs_left_by_kills,
              orphans_after_sweep: figures.orphans_after_sweep,
              scratch_left: figures.scratch_left,
              recover_s_mean: r.length
                ? +(r.reduce((a, b) => a + b, 0) / r.length).toFixed(2)
                : null,
              recover_s_max: r.length ? +Math.max(...r).toFixed(2) : null,
              total_s: Math.round((Date.now() - started) / 1000),
            }),
          );
          if (failedWhy.length) console.log("failed jobs:", failedWhy.join("; "));
        }
      });
    });
    assert.ok(Date.now() - started < 180_000, "the chaos test stays under 3 minutes");
  },
});

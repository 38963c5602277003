/**
 * Issue 21 §3 with kills: a mirror run that links copies (fs dedup) killed at any point
 * leaves every completed run restorable, and the next run completes with each content
 * on disk once. A real daemon is killed (SIGKILL) the moment its mirror area has had
 * its 5th, 60th and 150th new name (a copy renamed into place, or a link), while runs
 * change keys to contents other keys hold, held before, or no key held.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { forEachConcurrently } from "../../src/io/pool.ts";
import { filesUnder } from "../helpers/crash.ts";
import { json, type RunningDaemon, spawnDaemon, waitForJob } from "../helpers/daemon.ts";
import { startS3 } from "../helpers/s3.ts";
import { withTempDir, writeConfig } from "../helpers/tmp.ts";

const KEYS = Array.from({ length: 200 }, (_, i) => `o/${String(i).padStart(3, "0")}`);
const A = (j: number) => `A${j} `.repeat(500);
const B = (j: number) => `B${j} `.repeat(500);

/** Run v's content of the i-th key: 20 contents over 200 keys, moved between keys and back. */
function content(v: number, i: number): string {
  if (v === 1) return A(i % 20);
  if (v === 2) return i % 2 === 0 ? B(i % 20) : A((i + 1) % 20);
  if (v === 3) return i % 2 === 0 ? A(i % 20) : B((i + 3) % 20);
  return B(i % 20);
}

const sha = (t: string | Uint8Array) => createHash("sha256").update(t).digest("hex");

async function queue(d: RunningDaemon, path: string, body: unknown): Promise<number> {
  const res = await d.api(path, { method: "POST", json: body });
  const out = await json(res);
  assert.equal(res.status, 202, JSON.stringify(out));
  return out.data.job_id;
}

async function completed(d: RunningDaemon, id: number) {
  const job = await waitForJob(d, id, ["completed", "failed", "cancelled"], 90_000);
  assert.equal(job.status, "completed", JSON.stringify(job.error));
  return job;
}

/** Bytes the files under `root` occupy: each inode once. */
async function diskUsage(root: string): Promise<number> {
  const seen = new Set<string>();
  let bytes = 0;
  for (const f of await filesUnder(root)) {
    const info = await Deno.stat(join(root, f));
    if (seen.has(`${info.dev}:${info.ino}`)) continue;
    seen.add(`${info.dev}:${info.ino}`);
    bytes += info.size;
  }
  return bytes;
}

Deno.test({
  name:
    "mirror dedup: runs killed after their 5th, 60th and 150th new name leave every run restorable; each content is then on disk once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    const timer = setTimeout(() => {
      throw new Error("mirror dedup kill test timed out");
    }, 300_000);
    try {
      await withTempDir(async (dir) => {
        const config = await writeConfig(dir, {
          clients: {
            assets: {
              kind: "s3",
              endpoint: s3.endpoint,
              bucket: "src",
              access_key_id: s3.accessKeyId,
              secret_access_key: s3.secretAccessKey,
              remove: true,
            },
          },
          backup: { worker_max_attempts: 1, worker_concurrency: 1 },
        });
        const mirrored = join(dir, "repo", "mirrors", "assets");
        const source = async (v: number) => {
          await forEachConcurrently(KEYS.map((k, i) => [k, content(v, i)]), 8, async ([k, t]) => {
            await c.send(new PutObjectCommand({ Bucket: "src", Key: k, Body: t }));
          });
          return new Map(KEYS.map((k, i) => [k, sha(content(v, i))]));
        };
        const runs: Array<{ key: string; want: Map<string, string> }> = [];
        let d = await spawnDaemon(config);
        try {
          const want1 = await source(1);
          const first = await completed(
            d,
            await queue(d, "/admin/backups", { client_name: "assets" }),
          );
          runs.push({ key: first.result.key, want: want1 });
          assert.equal(first.result.objects_deduplicated, 180);

          for (const [v, after] of [[2, 5], [3, 60], [4, 150]]) {
            const want = await source(v);
            const watcher = Deno.watchFs(join(mirrored, "o%2F"), { recursive: false });
            const pid = d.pid;
            const killed = (async () => {
              let names = 0;
              for await (const event of watcher) {
                if (event.kind !== "create" && event.kind !== "rename") continue;
                names += event.paths.length;
                if (names >= after) {
                  Deno.kill(pid, "SIGKILL");
                  return names;
                }
              }
              return names;
            })();
            const victim = await queue(d, "/admin/backups", { client_name: "assets" });
            await killed;
            watcher.close();
            await d.stop("SIGKILL");

            d = await spawnDaemon(config);
            // Killed part way: the job never completed (the restart records it failed).
            const dead = await waitForJob(d, victim, ["failed", "cancelled", "completed"]);
            assert.notEqual(dead.status, "completed", `run ${v} was killed after it completed`);
            const job = await completed(
              d,
              await queue(d, "/admin/backups", { client_name: "assets" }),
            );
            runs.push({ key: job.result.key, want });
            for (const run of runs) {
              await completed(d, await queue(d, `/admin/backups/${run.key}/verify`, {}));
            }
          }

          for (const [n, run] of runs.entries()) {
            const target = join(dir, `out${n}`);
            await completed(d, await queue(d, `/admin/backups/${run.key}/restore`, { target }));
            const got = new Map<string, string>();
            for (const f of await filesUnder(target)) {
              got.set(f, sha(await Deno.readFile(join(target, f))));
            }
            assert.deepEqual(got, run.want, `run ${n + 1}`);
          }
          // Every content any run listed is kept (remove: true keeps displaced copies as
          // versions; nothing was pruned), each in one file however many keys hold it.
          const contents = new Set<string>();
          for (let v = 1; v <= 4; v++) KEYS.forEach((_, i) => contents.add(content(v, i)));
          const once = [...contents].reduce((n, t) => n + t.length, 0);
          assert.equal(await diskUsage(mirrored), once);
        } finally {
          await d.stop();
        }
      });
    } finally {
      clearTimeout(timer);
      await s3.stop();
    }
  },
});

/**
 * Issue 21: a mirror version collection killed at any point leaves every kept run
 * restorable. A real daemon is killed (SIGKILL) the moment its collection has removed
 * its 1st, 40th and 150th unreferenced version, restarted each time; the two kept
 * runs verify after each restart, and at the end restore byte for byte.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { forEachConcurrently } from "../../src/io/pool.ts";
import { filesUnder } from "../helpers/crash.ts";
import { json, type RunningDaemon, spawnDaemon, waitForJob } from "../helpers/daemon.ts";
import { startS3 } from "../helpers/s3.ts";
import { withTempDir, writeConfig } from "../helpers/tmp.ts";

const OBJECTS = 300;

async function contents(c: S3Client, bucket: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let marker: string | undefined;
  for (;;) {
    const page = await c.send(new ListObjectsCommand({ Bucket: bucket, Marker: marker }));
    const items = page.Contents ?? [];
    await forEachConcurrently(items, 8, async (o) => {
      const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      out.set(o.Key!, await got.Body!.transformToString());
    });
    if (!page.IsTruncated || !items.length) break;
    marker = items[items.length - 1].Key;
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

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

Deno.test({
  name:
    "mirror GC: killed after its 1st, 40th and 150th removal, every kept run still verifies and restores byte for byte",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src", "rst-first", "rst-last"]);
    const c = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    const timer = setTimeout(() => {
      throw new Error("mirror GC kill test timed out");
    }, 240_000);
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
        const keys = Array.from({ length: OBJECTS }, (_, i) => `o/${String(i).padStart(3, "0")}`);
        const snapshots: Array<Map<string, string>> = [];
        const runs: string[] = [];
        let d = await spawnDaemon(config);
        try {
          // Three runs, every object changed between them: run 2's 300 versions are
          // held by run 2 alone once it is gone.
          for (let v = 1; v <= 3; v++) {
            await forEachConcurrently(keys, 8, async (k) => {
              await c.send(new PutObjectCommand({ Bucket: "src", Key: k, Body: `v${v} of ${k}` }));
            });
            snapshots.push(await contents(c, "src"));
            const job = await completed(
              d,
              await queue(d, "/admin/backups", { client_name: "assets" }),
            );
            runs.push(job.result.key);
          }
          const versionsDir = join(dir, "repo", "mirrors", "assets", "%versions");
          assert.equal((await filesUnder(versionsDir)).length, 2 * OBJECTS);
          const gone = await d.api(`/admin/backups/${runs[1]}`, { method: "DELETE" });
          assert.equal(gone.status, 200, await gone.text());

          for (const after of [1, 40, 150]) {
            const before = (await filesUnder(versionsDir)).length;
            // The kill lands on the inotify event of the `after`-th removal.
            const watcher = Deno.watchFs(versionsDir, { recursive: true });
            const pid = d.pid;
            const killed = (async () => {
              let removals = 0;
              for await (const event of watcher) {
                if (event.kind !== "remove") continue;
                removals += event.paths.filter((p) => /\/[0-9a-f]{64}$/.test(p)).length;
                if (removals >= after) {
                  Deno.kill(pid, "SIGKILL");
                  return removals;
                }
              }
              return removals;
            })();
            await queue(d, "/admin/backups/prune", { client_name: "assets" });
            await killed;
            watcher.close();
            await d.stop("SIGKILL");
            const left = (await filesUnder(versionsDir)).length;
            assert.ok(left < before && left > OBJECTS, `killed part way: ${left} of ${before}`);

            d = await spawnDaemon(config);
            for (const key of [runs[0], runs[2]]) {
              await completed(d, await queue(d, `/admin/backups/${key}/verify`, {}));
            }
          }

          // The next collection finishes: exactly run 1's versions are left.
          const done = await completed(
            d,
            await queue(d, "/admin/backups/prune", { client_name: "assets" }),
          );
          assert.equal(done.result.mirrors[0].client_name, "assets");
          const left = await filesUnder(versionsDir);
          assert.equal(left.length, OBJECTS);
          for (
            const [key, bucket, snap] of [
              [runs[0], "rst-first", snapshots[0]],
              [runs[2], "rst-last", snapshots[2]],
            ] as const
          ) {
            await completed(
              d,
              await queue(d, `/admin/backups/${key}/restore`, { target: `s3://${bucket}/` }),
            );
            assert.deepEqual(await contents(c, bucket), snap);
          }
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

/**
 * Issue 21: every mirror run is a restorable point in time (kept versions by sha256),
 * retention with garbage collection, dedup, and the mass-delete guard; against the
 * real s3rver.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { Job } from "../../src/jobs/types.ts";
import type { Services } from "../../src/runtime/services.ts";
import { forEachConcurrently } from "../../src/io/pool.ts";
import { filesUnder } from "../helpers/crash.ts";
import { s3Repository, type S3Server, startS3 } from "../helpers/s3.ts";
import { run, testServices } from "../helpers/services.ts";
import { cairn, randomBytes, withTempDir, writeConfig } from "../helpers/tmp.ts";
import { createApp } from "../../src/api/app.ts";

const TIMEOUT_MS = 120_000;

function s3client(s3: S3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function put(c: S3Client, bucket: string, key: string, body: string) {
  await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function del(c: S3Client, bucket: string, key: string) {
  await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

/** Every object of a bucket under a prefix, key (without the prefix) to text. */
async function contents(c: S3Client, bucket: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let marker: string | undefined;
  for (;;) {
    const page = await c.send(
      new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }),
    );
    const items = page.Contents ?? [];
    for (const o of items) {
      const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      out.set(o.Key!.slice(prefix.length), await got.Body!.transformToString());
    }
    if (!page.IsTruncated || !items.length) break;
    marker = items[items.length - 1].Key;
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function services(dir: string, s3: S3Server, client: Record<string, unknown> = {}) {
  return testServices(dir, {
    assets: {
      kind: "s3",
      endpoint: s3.endpoint,
      bucket: "src",
      access_key_id: s3.accessKeyId,
      secret_access_key: s3.secretAccessKey,
      remove: true,
      ...client,
    },
  });
}

/** The sha256s the fs repository keeps as versions of `assets`. */
async function keptVersions(dir: string): Promise<Set<string>> {
  const files = await filesUnder(join(dir, "repo", "mirrors", "assets", "%versions"));
  return new Set(files.map((f) => f.split("/")[1]));
}

function mustComplete(job: Job): Job {
  assert.equal(job.status, "completed", job.error ?? "");
  return job;
}

async function restoreInto(svc: Services, key: string, bucket: string) {
  return await mustComplete(
    await run(svc, {
      kind: "restore",
      client_name: "assets",
      key,
      params: { target: `s3://${bucket}/` },
    }),
  );
}

Deno.test({
  name:
    "s3 mirror versions: three runs with changes and deletions each restore byte for byte; pruning the middle one frees exactly the versions only it held",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src", "rst1", "rst2", "rst3", "rst1b", "rst3b"]);
    const c = s3client(s3);
    const timer = setTimeout(() => {
      throw new Error("test timed out");
    }, TIMEOUT_MS);
    try {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3);
        try {
          const schedule = await svc.store.createSchedule({
            client_name: "assets",
            cron: "0 * * * *",
            timezone: "UTC",
            label: "hourly",
            enabled: true,
            retention: { keep_last: 1 },
            next_run_at: null,
          });
          // Run 1 (manual: never pruned): 30 objects.
          const keys = Array.from({ length: 30 }, (_, i) => `k/${String(i).padStart(2, "0")}`);
          await forEachConcurrently(keys, 8, (k) => put(c, "src", k, `v1 of ${k}`));
          const snap1 = await contents(c, "src");
          const run1 = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(run1.result!.objects_copied, 30);
          assert.equal(run1.result!.versions_kept, 0);
          assert.deepEqual(await keptVersions(dir), new Set());

          // Run 2 (scheduled): k/00-k/02 change, k/03-k/04 deleted, two new objects (one
          // a copy of k/00's first bytes), k/05 changed twice before run 3.
          for (const k of keys.slice(0, 3)) await put(c, "src", k, `v2 of ${k}`);
          await put(c, "src", "k/05", "v2 of k/05");
          for (const k of keys.slice(3, 5)) await del(c, "src", k);
          await put(c, "src", "n/new", "only in run 2");
          await put(c, "src", "n/copy", "v1 of k/00");
          const snap2 = await contents(c, "src");
          const run2 = await mustComplete(
            await run(svc, {
              kind: "backup",
              client_name: "assets",
              label: "hourly",
              schedule_id: schedule.id,
            }),
          );
          assert.equal(run2.result!.objects_copied, 6);
          assert.equal(run2.result!.objects_removed, 2);
          // k/00-02, k/05 changed and k/03-04 removed: six displaced copies kept.
          assert.equal(run2.result!.versions_kept, 6);

          // Run 3 (scheduled): k/05 changes again, n/new deleted, k/01 reverted to
          // its run-1 bytes, n/copy deleted (its bytes are k/00's v1, already kept).
          await put(c, "src", "k/05", "v3 of k/05");
          await put(c, "src", "k/01", "v1 of k/01");
          await del(c, "src", "n/new");
          await del(c, "src", "n/copy");
          const snap3 = await contents(c, "src");
          const run3 = await mustComplete(
            await run(svc, {
              kind: "backup",
              client_name: "assets",
              label: "hourly",
              schedule_id: schedule.id,
            }),
          );
          assert.equal(run3.result!.objects_copied, 2);
          assert.equal(run3.result!.objects_removed, 2);
          // Kept: k/05's v2, n/new and k/01's v2. n/copy's bytes were already kept.
          assert.equal(run3.result!.versions_kept, 3);

          // What the mirror area holds as versions: each displaced copy once.
          const displaced = new Set([
            ...["k/00", "k/01", "k/02", "k/03", "k/04", "k/05"].map((k) => sha(snap1.get(k)!)),
            ...["k/05", "n/new", "k/01"].map((k) => sha(snap2.get(k)!)),
          ]);
          assert.deepEqual(await keptVersions(dir), displaced);
          // The newest state is where it always was: a plain copy of mirrors/assets/.
          const current = await filesUnder(join(dir, "repo", "mirrors", "assets"));
          assert.deepEqual(
            current.filter((f) => !f.startsWith("%versions/")),
            [...snap3.keys()].map((k) => k.replace("/", "%2F/")),
          );

          const listings = [run1, run2, run3].map((j) => String(j.result!.key));
          for (const [i, key] of listings.entries()) {
            await mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
            await restoreInto(svc, key, `rst${i + 1}`);
          }
          assert.deepEqual(await contents(c, "rst1"), snap1);
          assert.deepEqual(await contents(c, "rst2"), snap2);
          assert.deepEqual(await contents(c, "rst3"), snap3);

          // The plan names the run and the bytes retention would free.
          const onlyRun2 = [...displaced].filter((h) =>
            ![...snap1.values(), ...snap3.values()].map(sha).includes(h)
          );
          // k/05's v2 and n/new: only run 2 lists them (k/01's v2 too).
          assert.equal(onlyRun2.length, 3);
          const freedBytes = ["k/05", "n/new", "k/01"]
            .reduce((n, k) => n + new TextEncoder().encode(snap2.get(k)!).byteLength, 0);
          const plan = await mustComplete(
            await run(svc, { kind: "prune", client_name: "assets", params: { dry_run: true } }),
          );
          assert.deepEqual(plan.result!.mirrors, [{
            client_name: "assets",
            runs: [listings[1]],
            versions: 3,
            bytes: freedBytes,
          }]);
          assert.deepEqual(await keptVersions(dir), displaced, "a dry run removes nothing");

          const pruned = await mustComplete(
            await run(svc, { kind: "prune", client_name: "assets" }),
          );
          assert.equal(pruned.result!.removed, 1);
          assert.deepEqual(pruned.result!.mirrors, [{
            client_name: "assets",
            runs: [listings[1]],
            versions: 3,
            bytes: freedBytes,
          }]);
          assert.deepEqual(
            await keptVersions(dir),
            new Set([...displaced].filter((h) => !onlyRun2.includes(h))),
          );
          for (
            const [key, bucket, snap] of [[listings[0], "rst1b", snap1], [
              listings[2],
              "rst3b",
              snap3,
            ]] as const
          ) {
            await mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
            await restoreInto(svc, key, bucket);
            assert.deepEqual(await contents(c, bucket), snap);
          }
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      clearTimeout(timer);
      await s3.stop();
    }
  },
});

Deno.test({
  name: "s3 mirror versions: identical content is kept once; bytes_stored_new against bytes_copied",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3);
        try {
          const same = "same bytes ".repeat(100); // 1,100 bytes
          const keys = Array.from({ length: 10 }, (_, i) => `d/${i}`);
          for (const k of keys) await put(c, "src", k, same);
          const first = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(first.result!.bytes_copied, 11_000);
          // On an fs repository the ten keys share one stored file (hard links).
          assert.equal(first.result!.bytes_stored_new, 1_100);
          assert.equal(first.result!.bytes_deduplicated, 9_900);
          for (const [i, k] of keys.entries()) await put(c, "src", k, `new ${i}`);
          const second = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(second.result!.objects_copied, 10);
          assert.equal(second.result!.bytes_copied, 50);
          // Ten displaced copies of one content: one version, nine not stored twice.
          assert.equal(second.result!.versions_kept, 1);
          assert.equal(second.result!.bytes_deduplicated, 9_900);
          // What the run wrote (its ten copies), never less than nothing.
          assert.equal(second.result!.bytes_stored_new, 50);
          assert.deepEqual(await keptVersions(dir), new Set([sha(same)]));
          await mustComplete(
            await run(svc, {
              kind: "verify",
              client_name: "assets",
              key: String(first.result!.key),
            }),
          );
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror guard: 51% of the previous run's objects gone fails the run before anything is removed; force passes; 49% passes",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3);
        try {
          const keys = Array.from({ length: 100 }, (_, i) => `g/${String(i).padStart(3, "0")}`);
          await forEachConcurrently(keys, 8, (k) => put(c, "src", k, `v1 ${k}`));
          await mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          const stored = async () =>
            (await filesUnder(join(dir, "repo", "mirrors", "assets", "g%2F"))).length;
          assert.equal(await stored(), 100);

          await forEachConcurrently(keys.slice(0, 51), 8, (k) => del(c, "src", k));
          const refused = await run(svc, { kind: "backup", client_name: "assets" });
          assert.equal(refused.status, "failed");
          assert.equal(refused.attempts, 1);
          assert.match(
            refused.error!,
            /no longer holds 51 of the 100 objects the previous run saw \(51\.0%\), more than max_delete_percent \(50%\): nothing was removed or marked deleted/,
          );
          assert.match(refused.error!, /cairn backup assets --force/);
          assert.match(refused.error!, /"force": true/);
          assert.equal(await stored(), 100, "nothing removed");
          assert.equal(
            (await filesUnder(join(dir, "repo", "backups", "assets"))).filter((f) =>
              f.endsWith(".mirror.json.zst")
            ).length,
            1,
            "no listing for the refused run",
          );

          const forced = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets", params: { force: true } }),
          );
          assert.equal(forced.result!.objects_removed, 51);
          assert.equal(forced.result!.objects_deleted_in_source, 51);
          assert.equal(await stored(), 49);

          // Back to 100, then 49 of them gone: under the limit.
          await forEachConcurrently(keys.slice(0, 51), 8, (k) => put(c, "src", k, `v1 ${k}`));
          await mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          await forEachConcurrently(keys.slice(0, 49), 8, (k) => del(c, "src", k));
          const under = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(under.result!.objects_removed, 49);
          assert.equal(await stored(), 51);
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror restore into a local directory: each run's bytes at the keys' paths, folder markers as directories, keys with no file name named",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3);
        try {
          await put(c, "src", "photos/2024/1.jpg", "one");
          await put(c, "src", "docs/readme.txt", "v1 readme");
          await put(c, "src", "empty-folder/", "");
          const first = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          await put(c, "src", "docs/readme.txt", "v2 readme");
          await put(c, "src", "x", "a file named x");
          await put(c, "src", "x/y", "and x as a directory");
          const second = await mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );

          const out1 = join(dir, "out1");
          const r1 = await mustComplete(
            await run(svc, {
              kind: "restore",
              client_name: "assets",
              key: String(first.result!.key),
              params: { target: out1 },
            }),
          );
          assert.equal(r1.result!.objects_restored, 2);
          assert.equal(r1.result!.directories_made, 1);
          assert.deepEqual(await filesUnder(out1), ["docs/readme.txt", "photos/2024/1.jpg"]);
          assert.equal(await Deno.readTextFile(join(out1, "docs/readme.txt")), "v1 readme");
          assert.ok((await Deno.stat(join(out1, "empty-folder"))).isDirectory);

          const again = await run(svc, {
            kind: "restore",
            client_name: "assets",
            key: String(first.result!.key),
            params: { target: out1 },
          });
          assert.equal(again.status, "failed");
          assert.match(again.error!, /Restore target .*out1 is not empty/);

          const out2 = join(dir, "out2");
          const r2 = await run(svc, {
            kind: "restore",
            client_name: "assets",
            key: String(second.result!.key),
            params: { target: out2 },
          });
          assert.equal(r2.status, "failed");
          assert.match(
            r2.error!,
            /Restored 3 objects into .*out2; 1 have no file name in a directory and were not restored \(restore the run into a bucket for those\): "x" \(other objects need 'x' as a directory\)/,
          );
          assert.deepEqual(await filesUnder(out2), [
            "docs/readme.txt",
            "photos/2024/1.jpg",
            "x/y",
          ]);
          assert.equal(await Deno.readTextFile(join(out2, "docs/readme.txt")), "v2 readme");
          assert.equal(await Deno.readTextFile(join(out2, "x/y")), "and x as a directory");
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror versions in an S3 repository: kept under mirrors-versions/<client>/, mirrors/<client>/ holds exactly the newest state, every run restores",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src", "repo", "rst-old", "rst-new"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await testServices(
          dir,
          {
            assets: {
              kind: "s3",
              endpoint: s3.endpoint,
              bucket: "src",
              access_key_id: s3.accessKeyId,
              secret_access_key: s3.secretAccessKey,
              remove: true,
            },
          },
          {},
          s3Repository(s3, "repo"),
        );
        try {
          await put(c, "src", "a/one", "one v1");
          await put(c, "src", "a/two", "two v1");
          const old = await contents(c, "src");
          const first = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          await put(c, "src", "a/one", "one v2");
          await del(c, "src", "a/two");
          const newest = await contents(c, "src");
          const second = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(second.result!.versions_kept, 2);
          const stored = await contents(c, "repo");
          const mirrored = new Map(
            [...stored].filter(([k]) => k.startsWith("mirrors/assets/"))
              .map(([k, v]) => [k.slice("mirrors/assets/".length), v]),
          );
          assert.deepEqual(mirrored, newest, "a plain sync of mirrors/assets/ is the newest state");
          assert.deepEqual(
            [...stored.keys()].filter((k) => k.startsWith("mirrors-versions/")).sort(),
            [sha("one v1"), sha("two v1")].sort().map((h) =>
              `mirrors-versions/assets/${h.slice(0, 2)}/${h}`
            ),
          );
          for (
            const [job, bucket, snap] of [[first, "rst-old", old], [
              second,
              "rst-new",
              newest,
            ]] as const
          ) {
            const key = String(job.result!.key);
            mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
            await restoreInto(svc, key, bucket);
            assert.deepEqual(await contents(c, bucket), snap);
          }
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror guard end to end: cairn backup refuses a bucket that lost 60%, names --force, and --force runs it; POST /admin/backups takes force: true",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
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
            },
          },
        });
        for (let i = 0; i < 10; i++) await put(c, "src", `f/${i}`, `file ${i}`);
        const first = await cairn(["backup", "assets", "--json", "--config", config]);
        assert.equal(first.code, 0, first.stderr);
        for (let i = 0; i < 6; i++) await del(c, "src", `f/${i}`);
        const refused = await cairn(["backup", "assets", "--config", config]);
        assert.notEqual(refused.code, 0);
        assert.match(
          refused.stdout + refused.stderr,
          /no longer holds 6 of the 10 objects the previous run saw \(60\.0%\).*cairn backup assets --force/s,
        );
        const forced = await cairn(["backup", "assets", "--force", "--json", "--config", config]);
        assert.equal(forced.code, 0, forced.stderr);
        const job = JSON.parse(forced.stdout);
        assert.equal(job.params.force, true);
        assert.equal(job.result.objects_deleted_in_source, 6);

        // The API body: force reaches the job's params; absent, it is not there.
        await Deno.mkdir(dir + "/api");
        const svc = await testServices(dir + "/api", {
          assets: {
            kind: "s3",
            endpoint: s3.endpoint,
            bucket: "src",
            access_key_id: s3.accessKeyId,
            secret_access_key: s3.secretAccessKey,
          },
        });
        try {
          const app = createApp({
            services: svc,
            pool: null,
            scheduler: null,
            startedAt: Date.now(),
          });
          for (const [body, params] of [[{ force: true }, { force: true }], [{}, {}]] as const) {
            const res = await app.request("/admin/backups", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ client_name: "assets", ...body }),
            });
            assert.equal(res.status, 202, await res.clone().text());
            const id = (await res.json()).data.job_id;
            assert.deepEqual((await svc.store.get(id))!.params, params);
          }
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror restore into a local directory: keys named like another key's temporary file (q and q.cairn-part-<job>) each get their own bytes",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3);
        try {
          // q is large so that it is still being written while the small ones finish.
          const big = randomBytes(24 * 1024 * 1024);
          await c.send(new PutObjectCommand({ Bucket: "src", Key: "q", Body: big }));
          // Job ids in a fresh store: the backup is 1, the restore 2.
          for (let n = 1; n <= 4; n++) await put(c, "src", `q.cairn-part-${n}`, `part ${n}`);
          const backup = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          const out = join(dir, "out");
          const restored = mustComplete(
            await run(svc, {
              kind: "restore",
              client_name: "assets",
              key: String(backup.result!.key),
              params: { target: out },
            }),
          );
          assert.equal(restored.result!.objects_restored, 5);
          assert.deepEqual(await filesUnder(out), [
            "q",
            "q.cairn-part-1",
            "q.cairn-part-2",
            "q.cairn-part-3",
            "q.cairn-part-4",
          ]);
          const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
          assert.equal(digest(await Deno.readFile(join(out, "q"))), digest(big));
          for (let n = 1; n <= 4; n++) {
            assert.equal(await Deno.readTextFile(join(out, `q.cairn-part-${n}`)), `part ${n}`);
          }
        } finally {
          await svc.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

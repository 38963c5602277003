/**
 * Issue 21 §3, dedup: on an fs repository identical content under any keys and
 * across runs is stored once (hard links through the repository's link capability);
 * `bytes_stored_new` against `bytes_copied` in the job result. Plain, encrypted, and
 * switched between the two (never linked across). Against the real s3rver.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { generateIdentity, identityToRecipient } from "age-encryption";
import type { Job } from "../../src/jobs/types.ts";
import type { Services } from "../../src/runtime/services.ts";
import { FsRepository } from "../../src/repository/fs.ts";
import { filesUnder } from "../helpers/crash.ts";
import { s3Repository, type S3Server, startS3 } from "../helpers/s3.ts";
import { run, testServices } from "../helpers/services.ts";
import { randomBytes, withTempDir } from "../helpers/tmp.ts";

function s3client(s3: S3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function put(c: S3Client, key: string, body: Uint8Array) {
  await c.send(new PutObjectCommand({ Bucket: "src", Key: key, Body: body }));
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const AGE_MAGIC = "age-encryption.org/v1\n";
/** An age file of `n` bytes for one X25519 recipient (see s3mirror_encryption_test.ts). */
const ageSize = (n: number) => 168 + 16 + n + 16 * Math.max(1, Math.ceil(n / 65536));

function mirrorClient(s3: S3Server) {
  return {
    assets: {
      kind: "s3",
      endpoint: s3.endpoint,
      bucket: "src",
      access_key_id: s3.accessKeyId,
      secret_access_key: s3.secretAccessKey,
      remove: true,
    },
  };
}

function mustComplete(job: Job): Job {
  assert.equal(job.status, "completed", job.error ?? "");
  return job;
}

/** Bytes the files under `root` occupy: each inode (a file and its hard links) once. */
async function diskUsage(root: string): Promise<number> {
  const seen = new Set<string>();
  let bytes = 0;
  for (const f of await filesUnder(root)) {
    const info = await Deno.stat(join(root, f));
    const id = `${info.dev}:${info.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    bytes += info.size;
  }
  return bytes;
}

const inode = async (path: string) => (await Deno.stat(path)).ino;

/** Every file under `root`, relative path to its sha256. */
async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await filesUnder(root)) out.set(f, sha(await Deno.readFile(join(root, f))));
  return out;
}

const sorted = (m: Map<string, string>) => new Map([...m].sort(([a], [b]) => a < b ? -1 : 1));

/** Verifies run `key` and restores it into a fresh directory, which must hold exactly `want`. */
async function restoresEqual(
  svc: Services,
  key: string,
  target: string,
  want: Map<string, Uint8Array>,
) {
  mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
  mustComplete(await run(svc, { kind: "restore", client_name: "assets", key, params: { target } }));
  assert.deepEqual(
    await tree(target),
    sorted(new Map([...want].map(([k, v]) => [k, sha(v)]))),
    `${key} into ${target}`,
  );
}

function versionPath(dir: string, content: Uint8Array): string {
  const h = sha(content);
  return join(dir, "repo", "mirrors", "assets", "%versions", h.slice(0, 2), h);
}

/**
 * The cases of §3 for one repository setting (plain, or age with one recipient):
 * ten keys of the same bytes in one run are stored once; a key changed X, Y, X over
 * three runs stores nothing new for X the third time; pruning and collecting the
 * runs keeps every kept run restorable, and removing every kept version never takes
 * a current key's content.
 */
async function dedupCases(dir: string, s3: S3Server, encrypted: boolean) {
  const c = s3client(s3);
  const identity = await generateIdentity();
  await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
  const svc = await testServices(dir, mirrorClient(s3), {}, {
    kind: "fs",
    path: join(dir, "repo"),
    ...(encrypted
      ? {
        encryption: {
          recipients: [await identityToRecipient(identity)],
          identity_file: join(dir, "key.txt"),
        },
      }
      : {}),
  });
  const stored = (n: number) => encrypted ? ageSize(n) : n;
  const mirrored = join(dir, "repo", "mirrors", "assets");
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
    const scheduled = {
      kind: "backup" as const,
      client_name: "assets",
      label: "hourly",
      schedule_id: schedule.id,
    };
    const same = randomBytes(100_000);
    const x = randomBytes(50_000);
    const y = randomBytes(40_000);
    const source = new Map<string, Uint8Array>();
    const set = async (k: string, v: Uint8Array) => {
      source.set(k, v);
      await put(c, k, v);
    };

    // Run 1 (manual, never pruned): ten keys of the same bytes, and x.
    const keys = Array.from({ length: 10 }, (_, i) => `d/${i}`);
    for (const k of keys) await set(k, same);
    await set("x", x);
    const snap1 = new Map(source);
    const run1 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
    assert.equal(run1.result!.objects_copied, 11);
    assert.equal(run1.result!.bytes_copied, 1_050_000);
    assert.equal(run1.result!.bytes_stored_new, stored(100_000) + stored(50_000));
    assert.equal(run1.result!.objects_deduplicated, 9);
    assert.equal(run1.result!.bytes_deduplicated, 9 * stored(100_000));
    assert.equal(await diskUsage(mirrored), stored(100_000) + stored(50_000));
    const shared = await inode(join(mirrored, "d%2F", "0"));
    for (const k of keys) assert.equal(await inode(join(mirrored, "d%2F", k.slice(2))), shared, k);
    for (const k of keys) {
      const head = new TextDecoder().decode(
        (await Deno.readFile(join(mirrored, "d%2F", k.slice(2)))).subarray(0, 22),
      );
      assert.equal(head === AGE_MAGIC, encrypted, k);
    }
    await restoresEqual(svc, String(run1.result!.key), join(dir, "out1"), snap1);

    // Copied elsewhere without cairn (the versions left out): separate files, each whole.
    const synced = join(dir, "synced");
    const rsync = await new Deno.Command("rsync", {
      args: ["-a", "--exclude", "%versions/*", `${mirrored}/`, `${synced}/`],
    }).output();
    assert.ok(rsync.success, new TextDecoder().decode(rsync.stderr));
    for (const k of keys) {
      const info = await Deno.stat(join(synced, "d%2F", k.slice(2)));
      assert.equal(info.nlink, 1, k);
      assert.equal(info.size, stored(100_000), k);
    }

    // Run 2: x changes to y, and d/0 changes: its old bytes are kept as a version
    // (the same file the other nine keys name), the nine keep theirs.
    await set("x", y);
    const d0 = randomBytes(1_000);
    await set("d/0", d0);
    const snap2 = new Map(source);
    const run2 = mustComplete(await run(svc, scheduled));
    assert.equal(run2.result!.objects_copied, 2);
    assert.equal(run2.result!.versions_kept, 2);
    assert.equal(run2.result!.bytes_stored_new, stored(40_000) + stored(1_000));
    for (const k of keys.slice(1)) {
      assert.equal(await inode(join(mirrored, "d%2F", k.slice(2))), shared, k);
    }
    assert.equal(await inode(versionPath(dir, same)), shared);
    assert.notEqual(await inode(join(mirrored, "d%2F", "0")), shared);

    // Run 3: x back to its first bytes: downloaded and checked, stored nothing new.
    await set("x", x);
    const snap3 = new Map(source);
    const run3 = mustComplete(await run(svc, scheduled));
    assert.equal(run3.result!.objects_copied, 1);
    assert.equal(run3.result!.bytes_copied, 50_000);
    assert.equal(run3.result!.bytes_stored_new, 0);
    assert.equal(run3.result!.objects_deduplicated, 1);
    assert.equal(run3.result!.bytes_deduplicated, stored(50_000));
    assert.equal(await inode(join(mirrored, "x")), await inode(versionPath(dir, x)));
    const total = stored(100_000) + stored(50_000) + stored(40_000) + stored(1_000);
    assert.equal(await diskUsage(mirrored), total);

    for (const [i, [job, snap]] of [[run1, snap1], [run2, snap2], [run3, snap3]].entries()) {
      await restoresEqual(
        svc,
        String((job as Job).result!.key),
        join(dir, `all${i}`),
        snap as Map<string, Uint8Array>,
      );
    }

    // Prune: run 2 goes (keep_last 1; run 1 is manual); y's version was only its.
    const pruned = mustComplete(await run(svc, { kind: "prune", client_name: "assets" }));
    assert.equal(pruned.result!.removed, 1);
    assert.deepEqual(pruned.result!.mirrors, [{
      client_name: "assets",
      runs: [String(run2.result!.key)],
      versions: 1,
      bytes: stored(40_000),
    }]);
    assert.equal(await diskUsage(mirrored), total - stored(40_000));
    // How the encrypted versions are stored is noted for a later link; the collected
    // one's note went with it. Plain versions need none (their name is their bytes' sha256).
    const hints = join(dir, "repo", "state", "mirror-versions", "assets.json");
    if (encrypted) {
      const noted = JSON.parse(await Deno.readTextFile(hints)).versions;
      assert.deepEqual(Object.keys(noted).sort(), [sha(same), sha(x)].sort());
      assert.equal(noted[sha(x)].stored_size, ageSize(50_000));
    } else assert.equal(await Deno.stat(hints).catch(() => null), null);
    await restoresEqual(svc, String(run1.result!.key), join(dir, "after1"), snap1);
    await restoresEqual(svc, String(run3.result!.key), join(dir, "after3"), snap3);

    // Removing every kept version (what a collection does to each) removes only
    // those names: each current key keeps its content, and the newest run restores.
    const repo = new FsRepository(join(dir, "repo"));
    for (const f of await filesUnder(join(mirrored, "%versions"))) {
      await repo.remove(`mirrors/assets/%versions/${f}`);
    }
    assert.deepEqual(await filesUnder(join(mirrored, "%versions")), []);
    await restoresEqual(svc, String(run3.result!.key), join(dir, "last"), snap3);
    assert.equal(await diskUsage(mirrored), stored(100_000) + stored(50_000) + stored(1_000));
  } finally {
    await svc.store.close();
  }
}

Deno.test({
  name:
    "s3 mirror dedup, fs repository: ten keys of one content stored once, X-Y-X stores nothing new for X, prune and version removal keep every kept run restorable",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    try {
      await withTempDir((dir) => dedupCases(dir, s3, false));
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name: "s3 mirror dedup with age: the same cases, the shared files are age files",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    try {
      await withTempDir((dir) => dedupCases(dir, s3, true));
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror dedup: copies stored plain and encrypted never share a file, when encryption is switched on and off again",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const repository = { kind: "fs", path: join(dir, "repo") };
        const encryption = {
          recipients: [await identityToRecipient(identity)],
          identity_file: join(dir, "key.txt"),
        };
        const mirrored = join(dir, "repo", "mirrors", "assets");
        const a = randomBytes(30_000);
        const isAge = async (f: string) =>
          new TextDecoder().decode((await Deno.readFile(join(mirrored, f))).subarray(0, 22)) ===
            AGE_MAGIC;
        const jobs: Job[] = [];
        const withServices = async (
          name: string,
          repo: Record<string, unknown>,
          fn: (svc: Services) => Promise<void>,
        ) => {
          const svc = await testServices(join(dir, name), mirrorClient(s3), {}, repo);
          try {
            await fn(svc);
          } finally {
            await svc.store.close();
          }
        };
        // Run 1, plain: p1.
        await put(c, "p1", a);
        await withServices("plain1", repository, async (svc) => {
          jobs.push(mustComplete(await run(svc, { kind: "backup", client_name: "assets" })));
        });
        // Run 2, encrypted: p1 copied again as an age file (its plain copy kept as the
        // version), p2 of the same bytes linked to p1's age file, never to the plain one.
        await put(c, "p2", a);
        await withServices("age", { ...repository, encryption }, async (svc) => {
          const r = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          jobs.push(r);
          assert.equal(r.result!.objects_copied, 2);
          assert.equal(r.result!.bytes_stored_new, ageSize(30_000));
          assert.equal(r.result!.objects_deduplicated, 1);
        });
        assert.ok(await isAge("p1"));
        assert.ok(await isAge("p2"));
        assert.equal(await inode(join(mirrored, "p1")), await inode(join(mirrored, "p2")));
        assert.notEqual(await inode(join(mirrored, "p1")), await inode(versionPath(dir, a)));
        assert.equal((await Deno.stat(versionPath(dir, a))).size, 30_000);
        // Run 3, plain again: both copied again as plain bytes, linked to the plain
        // version: nothing new stored, no age file left in the newest state.
        await withServices("plain2", repository, async (svc) => {
          const r = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          jobs.push(r);
          assert.equal(r.result!.objects_copied, 2);
          assert.equal(r.result!.bytes_stored_new, 0);
          assert.equal(r.result!.objects_deduplicated, 2);
        });
        assert.ok(!(await isAge("p1")));
        assert.ok(!(await isAge("p2")));
        assert.equal(await inode(join(mirrored, "p1")), await inode(versionPath(dir, a)));
        assert.equal(await inode(join(mirrored, "p2")), await inode(versionPath(dir, a)));
        await withServices("reader", { ...repository, encryption }, async (svc) => {
          const want = [new Map([["p1", a]]), new Map([["p1", a], ["p2", a]])];
          for (const [i, job] of jobs.entries()) {
            await restoresEqual(
              svc,
              String(job.result!.key),
              join(dir, `out${i}`),
              want[Math.min(i, 1)],
            );
          }
        });
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror dedup, S3 repository: no links, each current key is its own object (only the version store is content-addressed)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src", "repo-bucket"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const svc = await testServices(
          dir,
          mirrorClient(s3),
          {},
          s3Repository(s3, "repo-bucket", "cairn"),
        );
        try {
          const same = randomBytes(10_000);
          for (let i = 0; i < 5; i++) await put(c, `s/${i}`, same);
          const r = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(r.result!.bytes_copied, 50_000);
          assert.equal(r.result!.bytes_stored_new, 50_000);
          assert.equal(r.result!.objects_deduplicated, 0);
          assert.equal(r.result!.bytes_deduplicated, 0);
          await restoresEqual(
            svc,
            String(r.result!.key),
            join(dir, "out"),
            new Map(Array.from({ length: 5 }, (_, i) => [`s/${i}`, same])),
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

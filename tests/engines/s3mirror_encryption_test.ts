/**
 * Issue 20, section 3, for s3 mirrors: with age recipients every mirrored copy and
 * kept version is an age file at its usual key (`age -d -i key.txt` gives the object
 * back), each run's listing goes through the pipeline (`.mirror.json.zst.age`), and a
 * write-only host (recipients, no identity) backs up, checks stored bytes, lists,
 * prunes and collects versions; only restore needs the identity. Against the real
 * s3rver, and the real `age` binary for the way back.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { generateIdentity, identityToRecipient } from "age-encryption";
import type { Job } from "../../src/jobs/types.ts";
import { readRefs, referencedVersions, writeRefs } from "../../src/engines/s3mirror/versions.ts";
import { removeOrphan } from "../../src/runtime/recover.ts";
import { configureLog } from "../../src/log.ts";
import { checkRepository } from "../../src/repository/check.ts";
import { FsRepository } from "../../src/repository/fs.ts";
import { filesUnder } from "../helpers/crash.ts";
import { s3Repository, type S3Server, startS3 } from "../helpers/s3.ts";
import { readListing, run, testServices } from "../helpers/services.ts";
import { randomBytes, withTempDir } from "../helpers/tmp.ts";

const HAS_AGE = new Deno.Command("age", { args: ["--version"] }).outputSync().success;

function s3client(s3: S3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function put(c: S3Client, key: string, body: string | Uint8Array) {
  await c.send(new PutObjectCommand({ Bucket: "src", Key: key, Body: body }));
}

const sha = (b: string | Uint8Array) => createHash("sha256").update(b).digest("hex");
const AGE_MAGIC = "age-encryption.org/v1\n";

/**
 * The size of an age file of `n` bytes for one X25519 recipient (age-encryption.org/v1):
 * a 168-byte header (version line, one stanza, MAC line), a 16-byte nonce, and each
 * 64 KiB chunk with its 16-byte Poly1305 tag (an empty file is one empty chunk).
 */
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

/** Every file under `root`, relative path to its sha256. */
async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await filesUnder(root)) out.set(f, sha(await Deno.readFile(join(root, f))));
  return out;
}

async function sh(script: string, cwd: string): Promise<Uint8Array> {
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `${script}\n${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

async function startsWithAgeMagic(path: string): Promise<boolean> {
  const bytes = await Deno.readFile(path);
  return new TextDecoder().decode(bytes.subarray(0, AGE_MAGIC.length)) === AGE_MAGIC;
}

Deno.test({
  name:
    "s3 mirror with age: copies, versions and listing encrypted; age -d gives each object back; an unchanged run copies nothing; every run restores; a damaged copy is named",
  ignore: !HAS_AGE,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        const recipient = await identityToRecipient(identity);
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const svc = await testServices(dir, mirrorClient(s3), {}, {
          kind: "fs",
          path: join(dir, "repo"),
          encryption: { recipients: [recipient], identity_file: join(dir, "key.txt") },
        });
        try {
          const alpha = "alpha ".repeat(200); // 1,200 bytes
          const big = randomBytes(70_000); // two age chunks
          await put(c, "a.txt", alpha);
          await put(c, "d/b.bin", big);
          const run1 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          const key1 = String(run1.result!.key);
          assert.match(key1, /\.mirror\.json\.zst\.age$/);
          assert.equal(run1.result!.objects_copied, 2);
          assert.equal(run1.result!.bytes_copied, 71_200);
          // What the run wrote: two age files, 1,400 and 70,216 bytes.
          assert.equal(ageSize(1_200) + ageSize(70_000), 71_616);
          assert.equal(run1.result!.bytes_stored_new, 71_616);

          const mirrored = join(dir, "repo", "mirrors", "assets");
          assert.deepEqual(await filesUnder(mirrored), ["a.txt", "d%2F/b.bin"]);
          assert.equal((await Deno.stat(join(mirrored, "a.txt"))).size, 1_400);
          assert.equal((await Deno.stat(join(mirrored, "d%2F/b.bin"))).size, 70_216);
          for (const f of ["a.txt", "d%2F/b.bin"]) {
            assert.ok(await startsWithAgeMagic(join(mirrored, f)), f);
          }
          // The way back without cairn: age -d of each copy at its key.
          const back = await sh(`age -d -i '${join(dir, "key.txt")}' 'd%2F/b.bin'`, mirrored);
          assert.equal(sha(back), sha(big));
          assert.equal(
            new TextDecoder().decode(await sh(`age -d -i ../../../key.txt a.txt`, mirrored)),
            alpha,
          );

          // The README's loop over a copy of the whole mirror area.
          await sh(
            `cp -a '${mirrored}' enc && cd enc && find . -type f ! -path './%versions/*' -exec sh -c 'mkdir -p "../plain/$(dirname "$1")" && age -d -i ../key.txt "$1" > "../plain/$1"' _ {} \\;`,
            dir,
          );
          assert.deepEqual(
            await tree(join(dir, "plain")),
            new Map([["a.txt", sha(alpha)], ["d%2F/b.bin", sha(big)]]),
          );

          // The listing records how each copy is stored; the identity stays the plain sha256.
          const listing = await readListing(svc, key1);
          const a = listing.objects.find((o) => o.key === "a.txt")!;
          assert.deepEqual(
            [a.size, a.sha256, a.stored_size, a.transforms],
            [1_200, sha(alpha), 1_400, [{ name: "age", recipients: [recipient] }]],
          );
          // The reference list: readable, the plain sha256s only.
          const refs = JSON.parse(
            await Deno.readTextFile(
              join(
                dir,
                "repo",
                "state",
                "mirror-refs",
                "assets",
                `${key1.split("/")[2].split(".")[0]}.json`,
              ),
            ),
          );
          assert.deepEqual(refs, {
            format_version: 1,
            listing: key1,
            sha256: [sha(alpha), sha(big)].sort(),
          });

          const unchanged = mustComplete(
            await run(svc, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(unchanged.result!.objects_copied, 0);
          assert.equal(unchanged.result!.objects_unchanged, 2);
          assert.equal(unchanged.result!.bytes_stored_new, 0);

          const alpha2 = "alpha two ".repeat(30); // 300 bytes
          await put(c, "a.txt", alpha2);
          await put(c, "c.txt", "");
          const run3 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          const key3 = String(run3.result!.key);
          assert.equal(run3.result!.objects_copied, 2);
          assert.equal(run3.result!.versions_kept, 1);
          assert.equal(run3.result!.bytes_stored_new, ageSize(300) + ageSize(0));
          const version = join(mirrored, "%versions", sha(alpha).slice(0, 2), sha(alpha));
          assert.ok(await startsWithAgeMagic(version), "the kept version is encrypted too");

          for (const [key, want, n] of [[key1, alpha, 1], [key3, alpha2, 3]] as const) {
            const v = mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
            assert.equal(
              (v.result!.checks as Record<string, unknown>).objects_checked,
              n === 1 ? 2 : 3,
            );
            const target = join(dir, `out${n}`);
            mustComplete(
              await run(svc, {
                kind: "restore",
                client_name: "assets",
                key,
                params: { target },
              }),
            );
            const expected = new Map([
              ["a.txt", sha(want)],
              ...(n === 3 ? [["c.txt", sha("")] as [string, string]] : []),
              ["d/b.bin", sha(big)],
            ]);
            assert.deepEqual(await tree(target), expected);
          }

          // One flipped byte in a stored copy: verify and restore name the object.
          const path = join(mirrored, "d%2F/b.bin");
          const bytes = await Deno.readFile(path);
          bytes[40_000] ^= 0x01;
          await Deno.writeFile(path, bytes);
          const v = await run(svc, { kind: "verify", client_name: "assets", key: key3 });
          assert.equal(v.status, "failed");
          assert.match(
            v.error!,
            /1 of 3 mirrored objects do not match the listing: d\/b\.bin \(.*d%2F\/b\.bin: .*cannot be decrypted to the end/,
          );
          const r = await run(svc, {
            kind: "restore",
            client_name: "assets",
            key: key3,
            params: { target: join(dir, "out4") },
          });
          assert.equal(r.status, "failed");
          assert.match(r.error!, /Restored 2 objects; 1 no longer match the listing/);
          assert.deepEqual([...(await tree(join(dir, "out4"))).keys()], ["a.txt", "c.txt"]);
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
    "s3 mirror on a write-only host: backs up, checks stored bytes, prunes and collects versions with no identity; restore fails up front; check lists orphaned versions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        const recipient = await identityToRecipient(identity);
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const repo = join(dir, "repo");
        await Deno.mkdir(join(dir, "w"));
        await Deno.mkdir(join(dir, "r"));
        // The write-only host: recipients, no identity_file.
        const writer = await testServices(join(dir, "w"), mirrorClient(s3), {}, {
          kind: "fs",
          path: repo,
          encryption: { recipients: [recipient] },
        });
        const reader = await testServices(join(dir, "r"), mirrorClient(s3), {}, {
          kind: "fs",
          path: repo,
          encryption: { recipients: [recipient], identity_file: join(dir, "key.txt") },
        });
        try {
          const schedule = await writer.store.createSchedule({
            client_name: "assets",
            cron: "0 * * * *",
            timezone: "UTC",
            label: "hourly",
            enabled: true,
            retention: { keep_last: 1 },
            next_run_at: null,
          });
          const scheduled = { kind: "backup" as const, client_name: "assets", label: "hourly" };
          // Run 1 (manual): x, y. Run 2: x changes, z new. Run 3: x again, z gone.
          await put(c, "x", "x one");
          await put(c, "y", "y stays");
          const run1 = mustComplete(await run(writer, { kind: "backup", client_name: "assets" }));
          await put(c, "x", "x two");
          await put(c, "z", "z only in run 2");
          const run2 = mustComplete(
            await run(writer, { ...scheduled, schedule_id: schedule.id }),
          );
          await put(c, "x", "x three");
          await c.send(new DeleteObjectCommand({ Bucket: "src", Key: "z" }));
          const run3 = mustComplete(
            await run(writer, { ...scheduled, schedule_id: schedule.id }),
          );
          assert.equal(run2.result!.versions_kept, 1);
          assert.equal(run3.result!.versions_kept, 2);
          const keys = [run1, run2, run3].map((j) => String(j.result!.key));
          for (const k of keys) assert.match(k, /\.mirror\.json\.zst\.age$/);

          // Stored bytes only, with no identity (of the manual run: a scheduled run that
          // passed verification is one retention keeps).
          const v = mustComplete(
            await run(writer, { kind: "verify", client_name: "assets", key: keys[0] }),
          );
          assert.equal(v.result!.sha256_ok, true);
          assert.match(
            String((v.result!.checks as Record<string, unknown>).content),
            /^not checked: the backup is encrypted/,
          );

          // Restore needs the identity, and says so before writing anything.
          const target = join(dir, "out-w");
          const refused = await run(writer, {
            kind: "restore",
            client_name: "assets",
            key: keys[0],
            params: { target },
          });
          assert.equal(refused.status, "failed");
          assert.match(
            refused.error!,
            /needs the matching age identity, looked for in repository\.encryption\.identity_file \(not set on this host\)/,
          );
          assert.equal(await Deno.stat(target).then(() => true, () => false), false);

          // Versions only run 2 holds: x two and z. Freed by the write-only host's prune.
          const mirrored = join(repo, "mirrors", "assets", "%versions");
          const onlyRun2 = [sha("x two"), sha("z only in run 2")];
          const freed = ageSize(5) + ageSize(15);
          const clean = mustComplete(await run(writer, { kind: "check" }));
          assert.equal(clean.result!.clean, true, JSON.stringify(clean.result!.problems));
          const plan = mustComplete(
            await run(writer, { kind: "prune", client_name: "assets", params: { dry_run: true } }),
          );
          assert.deepEqual(plan.result!.mirrors, [{
            client_name: "assets",
            runs: [keys[1]],
            versions: 2,
            bytes: freed,
          }]);
          const pruned = mustComplete(
            await run(writer, { kind: "prune", client_name: "assets" }),
          );
          assert.equal(pruned.result!.removed, 1);
          assert.deepEqual(pruned.result!.mirrors, [{
            client_name: "assets",
            runs: [keys[1]],
            versions: 2,
            bytes: freed,
          }]);
          const left = new Set((await filesUnder(mirrored)).map((f) => f.split("/")[1]));
          assert.deepEqual(
            left,
            new Set([sha("x one"), sha("x two")].filter((h) => !onlyRun2.includes(h))),
          );
          assert.equal(
            await Deno.stat(
              join(
                repo,
                "state",
                "mirror-refs",
                "assets",
                `${keys[1].split("/")[2].split(".")[0]}.json`,
              ),
            )
              .then(() => true, () => false),
            false,
            "the pruned run's reference list went with it",
          );

          // A run deleted by hand leaves versions no run refers to: check lists them.
          await Deno.remove(join(repo, `${keys[0]}.manifest.json`));
          await Deno.remove(join(repo, keys[0]));
          const found = await run(writer, { kind: "check" });
          // A check that finds problems fails (issue 22), its report kept as the result.
          assert.equal(found.status, "failed");
          assert.equal(found.result!.error_code, "CHECK_FOUND_PROBLEMS");
          const orphans = (found.result!.problems as Array<{ kind: string; key: string }>)
            .filter((p) => p.kind === "orphaned_version").map((p) => p.key);
          const xOne = sha("x one");
          assert.deepEqual(orphans, [`mirrors/assets/%versions/${xOne.slice(0, 2)}/${xOne}`]);

          // The host with the identity restores what is left.
          const out = join(dir, "out-r");
          mustComplete(
            await run(reader, {
              kind: "restore",
              client_name: "assets",
              key: keys[2],
              params: { target: out },
            }),
          );
          assert.deepEqual(
            await tree(out),
            new Map([["x", sha("x three")], ["y", sha("y stays")]]),
          );
        } finally {
          await writer.store.close();
          await reader.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test("s3 mirror versions of a cairn 0.1 repository: its plain listing, with or without a manifest, is read through the pipeline for collection and check", async () => {
  const fixture = new URL("../fixtures/mirror_v1/repo", import.meta.url).pathname;
  const listingKey = "backups/assets/20261130T095118089Z-manual.mirror.json";
  await withTempDir(async (dir) => {
    const cp = await new Deno.Command("cp", { args: ["-a", fixture, join(dir, "repo")] }).output();
    assert.ok(cp.success);
    const repo = new FsRepository(join(dir, "repo"));
    const listed = JSON.parse(await Deno.readTextFile(join(dir, "repo", listingKey))) as {
      objects: Array<{ sha256: string }>;
    };
    const want = new Set(listed.objects.map((o) => o.sha256));
    assert.equal(want.size, 7);
    assert.deepEqual((await referencedVersions(repo, "assets")).shas, want);
    const report = await checkRepository(repo);
    assert.deepEqual(report.problems, []);
    // A run whose delete stopped after its manifest: still counted, read as it is.
    await Deno.remove(join(dir, "repo", `${listingKey}.manifest.json`));
    assert.deepEqual((await referencedVersions(repo, "assets")).shas, want);
    // A compressed or encrypted listing with neither manifest nor reference list cannot be
    // read unchecked: collection stops rather than collect on a partial view.
    await Deno.rename(join(dir, "repo", listingKey), join(dir, "repo", `${listingKey}.zst.age`));
    await assert.rejects(
      () => referencedVersions(repo, "assets"),
      /has no manifest, so its stored bytes cannot be checked before they are decoded/,
    );
  });
});

Deno.test({
  name:
    "s3 mirror: switching encryption on copies every object again encrypted (the plain copies kept as versions), and off again plain; every run restores on the hosts that can open it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        const recipient = await identityToRecipient(identity);
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const repo = join(dir, "repo");
        const host = async (name: string, encryption?: Record<string, unknown>) => {
          await Deno.mkdir(join(dir, name));
          return await testServices(join(dir, name), mirrorClient(s3), {}, {
            kind: "fs",
            path: repo,
            ...(encryption ? { encryption } : {}),
          });
        };
        const plainHost = await host("plain");
        const writeOnly = await host("w", { recipients: [recipient] });
        const full = await host("r", {
          recipients: [recipient],
          identity_file: join(dir, "key.txt"),
        });
        try {
          await put(c, "p/1", "one");
          await put(c, "p/2", "two!");
          const run1 = mustComplete(
            await run(plainHost, { kind: "backup", client_name: "assets" }),
          );
          const run2 = mustComplete(
            await run(writeOnly, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(run2.result!.objects_copied, 2, "every object copied again, encrypted");
          assert.equal(run2.result!.versions_kept, 2, "the plain copies kept for run 1");
          assert.equal(run2.result!.bytes_stored_new, ageSize(3) + ageSize(4));
          const mirrored = join(repo, "mirrors", "assets");
          for (const f of ["p%2F/1", "p%2F/2"]) {
            assert.ok(await startsWithAgeMagic(join(mirrored, f)), f);
          }
          const again = mustComplete(
            await run(writeOnly, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(again.result!.objects_copied, 0);

          // Run 1 listed plain bytes: even the write-only host restores it (from the
          // plain versions); run 2 needs the identity.
          const restoreTo = (svc: typeof full, key: unknown, target: string) =>
            run(svc, {
              kind: "restore",
              client_name: "assets",
              key: String(key),
              params: { target: join(dir, target) },
            });
          const want = new Map([["p/1", sha("one")], ["p/2", sha("two!")]]);
          mustComplete(await restoreTo(writeOnly, run1.result!.key, "o1"));
          assert.deepEqual(await tree(join(dir, "o1")), want);
          const refused = await restoreTo(writeOnly, run2.result!.key, "o2");
          assert.equal(refused.status, "failed");
          assert.match(refused.error!, /needs the matching age identity/);
          mustComplete(await restoreTo(full, run2.result!.key, "o2"));
          assert.deepEqual(await tree(join(dir, "o2")), want);

          // Off again: plain copies; the encrypted ones are dropped, their bytes kept once.
          const run3 = mustComplete(
            await run(plainHost, { kind: "backup", client_name: "assets" }),
          );
          assert.equal(run3.result!.objects_copied, 2);
          assert.equal(run3.result!.versions_kept, 0);
          // ... and the plain copies linked to the plain versions of run 1 (fs: hard links).
          assert.equal(run3.result!.bytes_deduplicated, ageSize(3) + ageSize(4) + 3 + 4);
          assert.equal(run3.result!.bytes_stored_new, 0);
          assert.equal(await Deno.readTextFile(join(mirrored, "p%2F/1")), "one");
          for (const [svc, key, out] of [[full, run2, "o3"], [plainHost, run1, "o4"]] as const) {
            mustComplete(await restoreTo(svc, key.result!.key, out));
            assert.deepEqual(await tree(join(dir, out)), want);
          }
        } finally {
          for (const s of [plainHost, writeOnly, full]) await s.store.close();
        }
      });
    } finally {
      await s3.stop();
    }
  },
});

Deno.test({
  name:
    "s3 mirror with age into an S3 repository: copies and versions are age files under mirrors/ and mirrors-versions/, every run verifies and restores",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src", "repo-bucket"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const svc = await testServices(dir, mirrorClient(s3), {}, {
          ...s3Repository(s3, "repo-bucket", "cairn"),
          encryption: {
            recipients: [await identityToRecipient(identity)],
            identity_file: join(dir, "key.txt"),
          },
        });
        const stored = async (key: string) => {
          const got = await c.send(new GetObjectCommand({ Bucket: "repo-bucket", Key: key }));
          return await got.Body!.transformToByteArray();
        };
        try {
          const objects = Array.from(
            { length: 12 },
            (_, i) => [`s/${i}`, `object ${i} `.repeat(i * 50)],
          );
          for (const [k, v] of objects) await put(c, k, v);
          const run1 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(run1.result!.objects_copied, 12);
          for (const [k, v] of objects) {
            const bytes = await stored(`cairn/mirrors/assets/${k}`);
            assert.equal(bytes.length, ageSize(new TextEncoder().encode(v).length), k);
            assert.equal(new TextDecoder().decode(bytes.subarray(0, 22)), AGE_MAGIC, k);
          }
          await put(c, "s/3", "changed");
          const run2 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(run2.result!.objects_copied, 1);
          assert.equal(run2.result!.versions_kept, 1);
          const old = sha(objects[3][1]);
          const version = await stored(`cairn/mirrors-versions/assets/${old.slice(0, 2)}/${old}`);
          assert.equal(new TextDecoder().decode(version.subarray(0, 22)), AGE_MAGIC);
          for (const [n, job] of [[1, run1], [2, run2]] as const) {
            const key = String(job.result!.key);
            assert.match(key, /\.mirror\.json\.zst\.age$/);
            mustComplete(await run(svc, { kind: "verify", client_name: "assets", key }));
            const target = join(dir, `out${n}`);
            mustComplete(
              await run(svc, { kind: "restore", client_name: "assets", key, params: { target } }),
            );
            const want = new Map(
              objects.map(([k, v]) => [k, sha(n === 2 && k === "s/3" ? "changed" : v)]),
            );
            assert.deepEqual(
              await tree(target),
              new Map([...want].sort(([a], [b]) => a < b ? -1 : 1)),
            );
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

Deno.test("a mirror run's reference list goes with an orphan listing the sweep removes; a malformed one is refused", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(join(dir, "repo"));
    const bytes = (t: string) => ReadableStream.from([new TextEncoder().encode(t)]);
    const listing = "backups/assets/20261130T095118089Z-hourly.mirror.json.zst.age";
    const refs = "state/mirror-refs/assets/20261130T095118089Z-hourly.json";
    await repo.put(listing, bytes("listing"));
    await writeRefs(repo, listing, [sha("x")]);
    assert.deepEqual(await readRefs(repo, listing), [sha("x")]);
    configureLog({ to: () => {} });
    await removeOrphan(repo, listing, "test");
    assert.equal(await repo.stat(listing), null);
    assert.equal(await repo.stat(refs), null);
    assert.equal(await readRefs(repo, listing), null);
    // A reference list that is not one is refused, naming what to do.
    await repo.put(refs, bytes("{}"));
    await assert.rejects(() => readRefs(repo, listing), /is malformed; remove it/);
  });
});

Deno.test({
  name:
    "an encrypted mirror run whose reference list was removed (as its malformed-list error advises) is read through its listing with this host's identity: prune and check work",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const identity = await generateIdentity();
        const recipient = await identityToRecipient(identity);
        await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
        const svc = await testServices(dir, mirrorClient(s3), {}, {
          kind: "fs",
          path: join(dir, "repo"),
          encryption: { recipients: [recipient], identity_file: join(dir, "key.txt") },
        });
        try {
          await put(c, "a.txt", "one");
          const run1 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          await put(c, "a.txt", "two"); // "one" is now a kept version only run 1 names
          mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          const key1 = String(run1.result!.key);
          const refs = join(
            dir,
            "repo",
            "state",
            "mirror-refs",
            "assets",
            `${key1.split("/")[2].split(".")[0]}.json`,
          );
          await Deno.remove(refs);
          const dry = mustComplete(
            await run(svc, { kind: "prune", client_name: "assets", params: { dry_run: true } }),
          );
          assert.deepEqual(
            (dry.result!.mirrors as Array<{ versions: number }>).map((m) => m.versions),
            [0],
          );
          const pruned = mustComplete(await run(svc, { kind: "prune", client_name: "assets" }));
          assert.deepEqual(pruned.result!.failures ?? [], []);
          const checked = mustComplete(await run(svc, { kind: "check" }));
          assert.deepEqual(checked.result!.problems, []);
          // The kept version run 1 needs is still there: run 1 restores.
          const back = mustComplete(
            await run(svc, {
              kind: "restore",
              key: key1,
              params: { target: join(dir, "out") },
            }),
          );
          assert.equal(back.status, "completed");
          assert.equal(await Deno.readTextFile(join(dir, "out", "a.txt")), "one");
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
    "s3 mirror after a key rotation: a host holding only the new key is refused a restore of a run with old-key copies before anything is written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s3 = await startS3(["src"]);
    const c = s3client(s3);
    try {
      await withTempDir(async (dir) => {
        const [oldId, newId] = [await generateIdentity(), await generateIdentity()];
        const [oldR, newR] = [await identityToRecipient(oldId), await identityToRecipient(newId)];
        await Deno.writeTextFile(join(dir, "both.txt"), `${oldId}\n${newId}\n`);
        await Deno.writeTextFile(join(dir, "new.txt"), `${newId}\n`);
        const host = (recipient: string, identityFile: string) =>
          testServices(dir, mirrorClient(s3), {}, {
            kind: "fs",
            path: join(dir, "repo"),
            encryption: { recipients: [recipient], identity_file: join(dir, identityFile) },
          });
        await put(c, "a.txt", "alpha");
        await put(c, "b.txt", "bravo");
        let svc = await host(oldR, "both.txt");
        try {
          mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
        } finally {
          await svc.store.close();
        }
        // Rotated: a new object is stored for the new key; the unchanged ones keep their
        // copies for the old key (changing recipients copies nothing again).
        await put(c, "c.txt", "charlie");
        svc = await host(newR, "both.txt");
        let key: string;
        try {
          const run2 = mustComplete(await run(svc, { kind: "backup", client_name: "assets" }));
          key = String(run2.result!.key);
          assert.equal(run2.result!.objects_copied, 1);
        } finally {
          await svc.store.close();
        }
        svc = await host(newR, "new.txt");
        try {
          const target = join(dir, "out");
          const r = await run(svc, {
            kind: "restore",
            client_name: "assets",
            key,
            params: { target },
          });
          assert.equal(r.status, "failed");
          assert.match(
            r.error!,
            new RegExp(
              `This backup is encrypted for ${oldR}; no identity in the identity file .*new\\.txt matches`,
            ),
          );
          assert.equal(r.attempts, 1, "no retry: another attempt cannot find a key");
          await assert.rejects(Deno.stat(target), "nothing was written");
        } finally {
          await svc.store.close();
        }
        // The host holding both keys restores the run, every object equal.
        svc = await host(newR, "both.txt");
        try {
          const target = join(dir, "out-both");
          mustComplete(
            await run(svc, { kind: "restore", client_name: "assets", key, params: { target } }),
          );
          assert.deepEqual(
            await tree(target),
            new Map([["a.txt", sha("alpha")], ["b.txt", sha("bravo")], ["c.txt", sha("charlie")]]),
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

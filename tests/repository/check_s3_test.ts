import assert from "node:assert/strict";
import { join } from "node:path";
import { CreateMultipartUploadCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { checkRepository } from "../../src/repository/check.ts";
import { sortUploads } from "../../src/repository/check_uploads.ts";
import { LIVE_UPLOAD_MS, S3Repository } from "../../src/repository/s3.ts";
import { type S3Server, startS3 } from "../helpers/s3.ts";
import { cairn, withTempDir } from "../helpers/tmp.ts";

const HOUR = 3_600_000;

function repoFor(s3: S3Server, bucket: string, prefix: string) {
  return new S3Repository({
    kind: "s3",
    endpoint: s3.endpoint,
    region: "us-east-1",
    bucket,
    prefix,
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    force_path_style: true,
  });
}

/** Starts a real multipart upload on the server and sends one part; returns its id. */
async function startUpload(s3: S3Server, bucket: string, key: string): Promise<string> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  try {
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        PartNumber: 1,
        Body: new Uint8Array(1024).fill(7),
      }),
    );
    return UploadId!;
  } finally {
    client.destroy();
  }
}

/** Sets when an upload was initiated: s3rver's initiation time is its `key` file's mtime (s3_uploads.ts). */
async function backdate(s3: S3Server, bucket: string, uploadId: string, at: Date) {
  await Deno.utime(join(s3.dir, bucket, "._S3rver_uploads", uploadId, "key"), at, at);
}

Deno.test("check on S3: an unfinished multipart upload older than 24 h is a temp leftover with its key and initiation time; a young one is in progress; the sweep aborts only the old", async () => {
  const s3 = await startS3(["chk"]);
  try {
    const repo = repoFor(s3, "chk", "team");
    const oldKey = "backups/files/files-20260101T000000000Z-manual.tar.zst";
    const liveKey = "backups/files/files-20260102T000000000Z-manual.tar.zst";
    const oldId = await startUpload(s3, "chk", `team/${oldKey}`);
    const liveId = await startUpload(s3, "chk", `team/${liveKey}`);
    // Another prefix's upload is not this repository's business.
    await startUpload(s3, "chk", "elsewhere/backups/x.tar");
    const oldAt = new Date(Math.floor((Date.now() - 30 * HOUR) / 1000) * 1000);
    await backdate(s3, "chk", oldId, oldAt);
    // An upload 2 h old: older than the lease TTL (15 min), still not a leftover.
    const liveAt = new Date(Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000);
    await backdate(s3, "chk", liveId, liveAt);

    const report = await checkRepository(repo);
    assert.equal(report.clean, false);
    assert.deepEqual(report.problems, [{
      kind: "temp_leftover",
      key: oldKey,
      initiated_at: oldAt.toISOString(),
      upload_id: oldId,
      message:
        `${oldKey} has an unfinished multipart upload (id ${oldId}) initiated at ${oldAt.toISOString()}, the leftover of an interrupted write: the daemon's sweep aborts uploads older than 24 h, ` +
        "or a bucket lifecycle rule (AbortIncompleteMultipartUpload) does",
    }]);
    assert.deepEqual(report.uploads_in_progress, [{
      key: liveKey,
      upload_id: liveId,
      initiated_at: liveAt.toISOString(),
    }]);
    assert.equal(report.notes, undefined);

    await withTempDir(async (dir) => {
      const config = join(dir, "cairn.yaml");
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          store: { kind: "sqlite", path: join(dir, "cairn.db") },
          repository: {
            kind: "s3",
            endpoint: s3.endpoint,
            bucket: "chk",
            prefix: "team",
            access_key_id: s3.accessKeyId,
            secret_access_key: s3.secretAccessKey,
          },
        }),
      );
      const cli = await cairn(["check", "--config", config]);
      assert.equal(cli.code, 1, cli.stdout + cli.stderr);
      assert.match(
        cli.stdout,
        new RegExp(
          `^temp_leftover: ${oldKey.replace(/\./g, "\\.")} has an unfinished multipart upload`,
          "m",
        ),
      );
      assert.ok(
        cli.stdout.includes(
          `in progress (not a problem): ${liveKey} has a multipart upload initiated at ${liveAt.toISOString()}, less than 24 h ago`,
        ),
        cli.stdout,
      );
      assert.match(cli.stdout, /^1 problem\(s\) in s3:\/\/chk\/team\//m);
    });

    // The sweep passes the lease TTL (15 min): the 2 h old upload of a live backup is kept.
    assert.equal(await repo.capabilities.partialWrites!.sweep(15 * 60_000), 1);
    const after = await checkRepository(repo);
    assert.equal(after.clean, true, JSON.stringify(after.problems));
    assert.deepEqual(after.uploads_in_progress!.map((u) => u.upload_id), [liveId]);
  } finally {
    await s3.stop();
  }
});

Deno.test("check uploads: older than 24 h or of unknown age is a leftover; 24 h exactly is still in progress", () => {
  const now = 1_800_000_000_000;
  const found = sortUploads([
    { key: "a", upload_id: "1", initiated_at: now - LIVE_UPLOAD_MS },
    { key: "b", upload_id: "2", initiated_at: now - LIVE_UPLOAD_MS - 1 },
    { key: "c", upload_id: "3", initiated_at: null },
    { key: "d", upload_id: "4", initiated_at: now },
  ], now);
  assert.deepEqual(found.problems.map((p) => [p.key, p.initiated_at]), [
    ["b", new Date(now - LIVE_UPLOAD_MS - 1).toISOString()],
    ["c", null],
  ]);
  assert.match(
    found.problems[1].message,
    /^c has an unfinished multipart upload \(id 3\) of unknown age,/,
  );
  assert.deepEqual(found.in_progress.map((u) => u.key), ["a", "d"]);
  assert.equal(LIVE_UPLOAD_MS, 24 * HOUR);
});

Deno.test("check on S3: a server that cannot list multipart uploads (s3rver itself) gives a note, not a problem", async () => {
  const s3 = await startS3(["plain"], { direct: true });
  try {
    const report = await checkRepository(repoFor(s3, "plain", ""));
    assert.equal(report.clean, true);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.uploads_in_progress, []);
    assert.deepEqual(report.notes, [
      "Unfinished multipart uploads were not checked: S3 failed while listing unfinished " +
      `multipart uploads at s3://plain/ at ${s3.endpoint}: ` +
      "A parameter you provided implies functionality that is not implemented",
    ]);
  } finally {
    await s3.stop();
  }
});

import assert from "node:assert/strict";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { CairnError } from "../../src/errors.ts";
import { listBackups, writeManifest } from "../../src/repository/manifest.ts";
import { S3Repository } from "../../src/repository/s3.ts";
import { checkWritable } from "../../src/repository/preflight.ts";
import { startS3 } from "../helpers/s3.ts";
import { startS3Proxy } from "../helpers/s3_proxy.ts";
import { configureLog } from "../../src/log.ts";
import { isObjectExists, putIfAbsent } from "../../src/repository/capabilities.ts";
import { repositoryConformance } from "./conformance.ts";

function repoFor(
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string },
  bucket: string,
  prefix = "",
) {
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

repositoryConformance("s3", async () => {
  const s3 = await startS3(["repo-bucket"]);
  // A pass-through proxy, to see which requests a put sent (an aborted upload).
  const proxy = await startS3Proxy(s3.endpoint, () => null);
  return {
    repo: repoFor({ ...s3, endpoint: proxy.endpoint }, "repo-bucket", "cairn/"),
    requests: () => proxy.seen,
    cleanup: async () => {
      await proxy.stop();
      await s3.stop();
    },
  };
}, ["move", "partialWrites", "putIfAbsent"]);

Deno.test("s3 repository: listing pages past 1,000 keys and the catalog sees every backup", async () => {
  const s3 = await startS3(["many"]);
  try {
    const repo = repoFor(s3, "many");
    const base = Date.UTC(2026, 0, 1);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 1100; i++) {
      const stamp = new Date(base + i * 60_000).toISOString().replace(/[-:]/g, "").replace(".", "");
      const key = `backups/c/${stamp}-manual.tar.gz`;
      writes.push(writeManifest(repo, {
        format_version: 1,
        key,
        client_name: "c",
        kind: "directory",
        label: "manual",
        created_at: new Date(base + i * 60_000).toISOString(),
        size_bytes: 0,
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        job_id: i,
        schedule_id: null,
        tool_versions: {},
        facts: {},
      }));
      if (writes.length >= 50) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    let n = 0;
    for await (const _ of repo.list("backups/c/")) n++;
    assert.equal(n, 1100);
    const page = await listBackups(repo, { client: "c", limit: 10 });
    assert.equal(page.backups.length, 10);
    assert.equal(page.backups[0].job_id, 1099, "newest first");
    assert.ok(page.next_cursor);
  } finally {
    await s3.stop();
  }
});

// s3rver itself has no AbortMultipartUpload nor ListMultipartUploads; the test server's
// front answers both from s3rver's store (tests/helpers/s3_uploads.ts).
Deno.test("s3 repository: a multipart upload that fails part way reports the cause, leaves no object and aborts its upload", async () => {
  const s3 = await startS3(["mp"]);
  try {
    const repo = repoFor(s3, "mp");
    let sent = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 40 * 1024 * 1024) return c.error(new Error("source died at 40 MiB"));
        sent += 1 << 20;
        c.enqueue(new Uint8Array(1 << 20).fill(7));
      },
    });
    await assert.rejects(repo.put("backups/c/big.bin", failing), /source died|40 MiB/);
    assert.equal(await repo.stat("backups/c/big.bin"), null);
    assert.deepEqual(
      await repo.capabilities.partialWrites!.unfinishedUploads!(),
      [],
      "the parts are freed",
    );
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 repository: wrong credentials and a missing bucket fail at once with a clear message", async () => {
  const s3 = await startS3(["exists"]);
  try {
    const wrongKey = new S3Repository({
      kind: "s3",
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: "exists",
      prefix: "",
      access_key_id: "NOT-A-KEY",
      secret_access_key: "whatever",
      force_path_style: true,
    });
    const started = Date.now();
    await assert.rejects(
      checkWritable(wrongKey),
      (e) =>
        e instanceof CairnError && e.code === "REPOSITORY_REFUSED" &&
        /refused .*InvalidAccessKeyId.*access_key_id/.test(e.message),
    );
    assert.ok(Date.now() - started < 5000, "no retry loop on an auth error");
    await assert.rejects(
      checkWritable(repoFor(s3, "no-such-bucket")),
      (e) =>
        e instanceof CairnError && e.code === "REPOSITORY_REFUSED" &&
        /does not exist/.test(e.message),
    );
    const down = repoFor({ ...s3, endpoint: "http://127.0.0.1:1" }, "exists");
    await assert.rejects(
      down.stat("x"),
      (e) => e instanceof CairnError && e.code === "REPOSITORY_UNAVAILABLE",
    );
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 repository: keys with spaces, unicode, + and % round-trip", async () => {
  const s3 = await startS3(["odd"]);
  try {
    const repo = repoFor(s3, "odd", "p/");
    for (const key of ["mirrors/c/a b.txt", "mirrors/c/ünï/cødé.bin", "mirrors/c/x+y%z.txt"]) {
      await repo.put(key, ReadableStream.from([new TextEncoder().encode(key)]));
      assert.equal(await new Response(await repo.get(key)).text(), key);
    }
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new PutObjectCommand({ Bucket: "odd", Key: "outside-prefix", Body: "x" }));
    const keys: string[] = [];
    for await (const o of repo.list("")) keys.push(o.key);
    assert.ok(!keys.includes("outside-prefix") && keys.length === 3, keys.join(","));
  } finally {
    await s3.stop();
  }
});

Deno.test("cli: config check --probe proves an S3 repository writable, or says why not", async () => {
  const { cairn, withTempDir } = await import("../helpers/tmp.ts");
  const s3 = await startS3(["probe-bucket"]);
  try {
    await withTempDir(async (dir) => {
      const write = async (bucket: string, key: string) => {
        const path = `${dir}/${bucket}.yaml`;
        await Deno.writeTextFile(
          path,
          JSON.stringify({
            repository: {
              kind: "s3",
              endpoint: s3.endpoint,
              bucket,
              access_key_id: key,
              secret_access_key: "${S3_SECRET}",
            },
          }),
        );
        return path;
      };
      const ok = await cairn([
        "config",
        "check",
        "--probe",
        "--config",
        await write("probe-bucket", "S3RVER"),
      ], { env: { S3_SECRET: "S3RVER-secret-value" } });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(
        ok.stdout,
        /^ok {4}repository \(s3\): s3:\/\/probe-bucket\/ .* is reachable and writable$/m,
      );
      assert.ok(!ok.stdout.includes("S3RVER-secret-value"));
      const missing = await cairn([
        "config",
        "check",
        "--probe",
        "--config",
        await write("absent-bucket", "S3RVER"),
      ], { env: { S3_SECRET: "x-secret" } });
      assert.equal(missing.code, 1);
      assert.match(missing.stdout, /^FAIL {2}repository \(s3\): .*does not exist/m);
      const denied = await cairn([
        "config",
        "check",
        "--probe",
        "--config",
        await write("probe-bucket", "WRONGKEY"),
      ], { env: { S3_SECRET: "x-secret" } });
      assert.equal(denied.code, 1);
      assert.match(denied.stdout, /^FAIL {2}repository \(s3\): .*refused/m);
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 repository: on a server that ignores If-None-Match on writes, putIfAbsent says so and looks before it puts", async () => {
  const s3 = await startS3(["plain"]);
  // What an S3 server without conditional writes sees: the header never arrives.
  const proxy = await startS3Proxy(s3.endpoint, async (request, url) => {
    const headers = new Headers(request.headers);
    headers.delete("if-none-match");
    const answer = await fetch(new URL(url.pathname + url.search, s3.endpoint), {
      method: request.method,
      headers,
      body: request.body,
    });
    const out = new Headers(answer.headers);
    out.delete("transfer-encoding");
    return new Response(answer.body, { status: answer.status, headers: out });
  });
  const lines: string[] = [];
  configureLog({ to: (line) => lines.push(line) });
  try {
    const repo = repoFor({ ...s3, endpoint: proxy.endpoint }, "plain");
    const kept = new TextEncoder().encode("kept");
    await repo.put("backups/c/k.bin", ReadableStream.from([kept]));
    await assert.rejects(
      putIfAbsent(repo, "backups/c/k.bin", ReadableStream.from([new Uint8Array(10)])),
      (e) => isObjectExists(e),
    );
    const back = new Uint8Array(
      await new Response(await repo.get("backups/c/k.bin")).arrayBuffer(),
    );
    assert.deepEqual(back, kept);
    const warned = lines.filter((l) => l.includes("ignores If-None-Match on writes"));
    assert.equal(warned.length, 1, lines.join("\n"));
    // Probed once per process: a second publish does not probe again.
    await putIfAbsent(repo, "backups/c/other.bin", ReadableStream.from([kept]));
    assert.equal(
      proxy.seen.filter((r) => r.includes(".cairn-probe-")).length,
      3,
      "put, put, delete",
    );
    assert.deepEqual((await Array.fromAsync(repo.list(""))).map((o) => o.key), [
      "backups/c/k.bin",
      "backups/c/other.bin",
    ]);
  } finally {
    configureLog({ to: "stdout" });
    await proxy.stop();
    await s3.stop();
  }
});

/**
 * A worker frozen past its lease with its publish in flight (issue 18, "Left as they
 * are"): node a's PutObject of the artifact reaches the S3 side, a is frozen
 * (SIGSTOP) while that request is held there, node b takes the job over once a's
 * lease has expired and completes it, and only then does S3 apply a's request, as a
 * request already sent is applied whatever its sender does. Before the publish
 * refused to overwrite, a's bytes replaced b's under the manifest b wrote, and the
 * backup failed its verify.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { spawnDaemon, waitFor } from "../helpers/daemon.ts";
import { logTime, startedJobs, storeUrl } from "../helpers/cluster.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { S3Repository } from "../../src/repository/s3.ts";
import { listBackups } from "../../src/repository/manifest.ts";
import { withDatabase } from "../helpers/pg.ts";
import { startS3 } from "../helpers/s3.ts";
import { startS3Proxy } from "../helpers/s3_proxy.ts";
import { withTempDir } from "../helpers/tmp.ts";

const slow = { sanitizeResources: false, sanitizeOps: false };
const BUCKET = "frozen";

/** A node's config: the shared postgres store, an S3 repository at `endpoint`, one directory client. */
async function nodeConfig(
  dir: string,
  database: string,
  name: string,
  endpoint: string,
  source: string,
): Promise<string> {
  const repository = {
    kind: "s3",
    endpoint,
    bucket: BUCKET,
    access_key_id: "S3RVER",
    secret_access_key: "S3RVER",
    force_path_style: true,
    region: "us-east-1",
  };
  const config = {
    server: { listen: "127.0.0.1:0" },
    node: { name },
    store: { kind: "postgres", url: storeUrl(database), path: join(dir, name) },
    repository,
    backup: {
      // 3 s, the shortest lease allowed: renewed every second.
      worker_lease_ttl_minutes: 0.05,
      worker_max_attempts: 3,
      retry_backoff_ms: 100,
      execution_worker_poll_ms: 300,
      schedule_worker_poll_ms: 1000,
      worker_concurrency: 1,
    },
    clients: { files: { kind: "directory", path: source } },
  };
  const path = join(dir, `${name}.yaml`);
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
  return path;
}

Deno.test({
  name:
    "frozen worker: a publish in flight while its worker is frozen past its lease does not replace the re-run's backup (S3)",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const source = join(dir, "data");
        await Deno.mkdir(source);
        await Deno.writeTextFile(join(source, "a.txt"), "first run\n".repeat(2000));
        const s3 = await startS3([BUCKET]);
        // The artifact's first write is held at the S3 side until `release`: the request
        // has left node a, which is then frozen, and S3 applies it later.
        const gate = Promise.withResolvers<void>();
        const release = gate.promise;
        let arrived!: (path: string) => void;
        const firstWrite = new Promise<string>((r) => arrived = r);
        let heldAnswer: Promise<number> | null = null;
        const proxy = await startS3Proxy(s3.endpoint, (request, url, forward) => {
          const artifact = request.method === "PUT" &&
            url.pathname.startsWith(`/${BUCKET}/backups/files/`) &&
            !url.pathname.endsWith(".manifest.json") && !url.searchParams.has("partNumber");
          if (!artifact || heldAnswer !== null) return null;
          arrived(url.pathname);
          const answer = release.then(() => forward());
          heldAnswer = answer.then((r) => r.status);
          return answer;
        });
        const store = await PostgresStore.open(storeUrl(database), { max: 2 });
        const a = await spawnDaemon(await nodeConfig(dir, database, "a", proxy.endpoint, source));
        let b: Awaited<ReturnType<typeof spawnDaemon>> | null = null;
        let frozen = false;
        try {
          const job = await store.enqueue({
            kind: "backup",
            client_name: "files",
            max_attempts: 3,
          });
          const path = await firstWrite;
          Deno.kill(a.pid, "SIGSTOP");
          frozen = true;
          const running = (await store.get(job.id))!;
          assert.equal(running.status, "running");
          assert.equal(running.attempts, 1);
          assert.equal(`/${BUCKET}/${running.key}`, path, "a is writing the job's key");
          // The source changes, so the re-run's bytes differ from the frozen run's.
          await Deno.writeTextFile(join(source, "b.txt"), "second run\n".repeat(3000));
          b = await spawnDaemon(await nodeConfig(dir, database, "b", proxy.endpoint, source));
          const done = await waitFor(
            async () => {
              const j = (await store.get(job.id))!;
              return j.status === "completed" ? j : null;
            },
            "b to take the job over and complete it",
            90_000,
          );
          assert.equal(done.attempts, 2);
          assert.ok(startedJobs(b).includes(job.id), "b ran the second attempt");
          assert.equal(done.key, running.key, "the re-run used the job's key");

          // Now S3 gets a's request, sent before a froze; then a resumes.
          gate.resolve();
          const status = await heldAnswer!;
          Deno.kill(a.pid, "SIGCONT");
          frozen = false;
          await waitFor(
            () =>
              Promise.resolve(
                a.logs.some((l) => l.includes(`"job_id":${job.id}`) && /lost its lease/.test(l)),
              ),
            "a to end its attempt",
          );

          const repo = new S3Repository(
            {
              kind: "s3",
              endpoint: s3.endpoint,
              region: "us-east-1",
              bucket: BUCKET,
              prefix: "",
              access_key_id: s3.accessKeyId,
              secret_access_key: s3.secretAccessKey,
              force_path_style: true,
            },
          );
          const { backups } = await listBackups(repo, { client: "files" });
          assert.deepEqual(backups.map((m) => m.key), [done.key], "exactly one backup");
          const [manifest] = backups;
          assert.equal(manifest.job_id, job.id);
          assert.equal(manifest.sha256, (done.result as { sha256: string }).sha256);
          const stored = new Uint8Array(
            await new Response(await repo.get(done.key!)).arrayBuffer(),
          );
          assert.equal(createHash("sha256").update(stored).digest("hex"), manifest.sha256);
          assert.equal(stored.length, manifest.size_bytes);
          // No other object: no second artifact, no leftover under the prefix.
          const keys = (await Array.fromAsync(repo.list("backups/"))).map((o) => o.key).sort();
          assert.deepEqual(keys, [done.key, `${done.key}.manifest.json`]);

          // And a real verify of it passes.
          const verify = await store.enqueue({
            kind: "verify",
            client_name: "files",
            key: done.key,
            max_attempts: 1,
          });
          const verified = await waitFor(
            async () => {
              const j = (await store.get(verify.id))!;
              return j.status === "completed" || j.status === "failed" ? j : null;
            },
            "the verify job",
            60_000,
          );
          assert.equal(verified.status, "completed", verified.error ?? "");
          assert.equal((verified.result as { sha256_ok: boolean }).sha256_ok, true);
          assert.ok(logTime(b, "Job completed", job.id) !== null);
          assert.equal(status, 412, "S3 refused to replace the re-run's artifact");
        } finally {
          if (frozen) Deno.kill(a.pid, "SIGCONT");
          gate.resolve();
          await a.stop("SIGKILL");
          await b?.stop();
          await store.close();
          await proxy.stop();
          await s3.stop();
        }
      })
    ),
});

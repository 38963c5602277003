/**
 * The rules of a backup's no-overwrite publish (runtime/publish.ts; README,
 * Guarantees), run on a real backup: a directory client whose GNU tar waits before
 * it archives, so that "another attempt" (this test) can write under the job's key
 * between the attempt's start and its publish, as a worker frozen past its lease does.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.ts";
import { CairnError } from "../../src/errors.ts";
import { configureLog } from "../../src/log.ts";
import { manifestKey, mirrorRefsKey } from "../../src/repository/keys.ts";
import { type Manifest, readManifest, writeManifest } from "../../src/repository/manifest.ts";
import { executeJob } from "../../src/runtime/execute.ts";
import { openServices, type Services } from "../../src/runtime/services.ts";
import { LeaseLostError } from "../../src/store/store.ts";
import { writeRefs } from "../../src/engines/s3mirror/versions.ts";
import { FsRepository } from "../../src/repository/fs.ts";
import { partialWrites } from "../../src/repository/capabilities.ts";
import { slowTar } from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { startS3 } from "../helpers/s3.ts";
import { run, testServices } from "../helpers/services.ts";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const OTHER = new TextEncoder().encode("the other attempt's artifact\n");

async function setup(dir: string): Promise<Services> {
  configureLog({ to: () => {} });
  const source = join(dir, "data");
  await Deno.mkdir(source);
  await Deno.writeTextFile(join(source, "a.txt"), "alpha\n".repeat(500));
  const config = parseConfig(JSON.stringify({
    store: { kind: "sqlite", path: join(dir, "cairn.db") },
    repository: { kind: "fs", path: join(dir, "repo") },
    backup: { worker_max_attempts: 2 },
    tools: { tar: await slowTar(dir, 1) },
    clients: { files: { kind: "directory", path: source } },
  }));
  return await openServices(config);
}

function otherManifest(key: string, jobId: number, bytes = OTHER): Manifest {
  return {
    format_version: 2,
    key,
    client_name: "files",
    kind: "directory",
    label: "manual",
    created_at: "2026-01-01T00:00:00.000Z",
    size_bytes: bytes.length,
    sha256: sha(bytes),
    job_id: jobId,
    schedule_id: null,
    tool_versions: {},
    facts: {},
    transforms: [],
  };
}

/**
 * Runs a backup job's attempt; `meanwhile` runs once its key is fixed (tar is still
 * waiting), `beforeManifest` in place of the lease check before its manifest.
 */
async function attempt(
  services: Services,
  hooks: {
    meanwhile?: (key: string) => Promise<void>;
    confirmLease?: (call: number, key: string) => Promise<void>;
  },
) {
  const job = await services.store.enqueue({
    kind: "backup",
    client_name: "files",
    max_attempts: 2,
  });
  let key = "";
  let pending: Promise<void> = Promise.resolve();
  let calls = 0;
  const run = executeJob(services, { ...job, attempts: 1 }, {
    signal: new AbortController().signal,
    progress: () => {},
    setKey: (k) => {
      key = k;
      pending = hooks.meanwhile?.(k) ?? Promise.resolve();
      return Promise.resolve();
    },
    confirmLease: () => hooks.confirmLease?.(++calls, key) ?? Promise.resolve(),
  });
  const outcome = await run.then((r) => ({ result: r }), (error) => ({ error }));
  await pending;
  return { job, key: () => key, outcome };
}

const read = async (services: Services, key: string) =>
  new Uint8Array(await new Response(await services.repository.get(key)).arrayBuffer());

Deno.test("publish: the artifact is refused when another attempt of the job listed its backup; the attempt ends with that backup", async () => {
  await withTempDir(async (dir) => {
    const services = await setup(dir);
    try {
      const { job, key, outcome } = await attempt(services, {
        meanwhile: async (k) => {
          await services.repository.put(k, ReadableStream.from([OTHER]));
          // The job id is the one the store gives the first job: 1.
          await writeManifest(services.repository, otherManifest(k, 1));
        },
      });
      assert.equal(job.id, 1);
      assert.deepEqual(outcome, {
        result: { key: key(), size_bytes: OTHER.length, sha256: sha(OTHER), recovered: true },
      });
      assert.deepEqual(await read(services, key()), OTHER, "the other attempt's bytes stay");
      assert.equal((await readManifest(services.repository, key())).sha256, sha(OTHER));
      assert.deepEqual(await partialWrites(services.repository).list(), [], "no part left");
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("publish: a bare artifact another attempt stored meanwhile is neither replaced nor removed; the attempt fails to be retried", async () => {
  await withTempDir(async (dir) => {
    const services = await setup(dir);
    try {
      const { key, outcome } = await attempt(services, {
        meanwhile: async (k) => {
          await services.repository.put(k, ReadableStream.from([OTHER]));
        },
      });
      const error = (outcome as { error: unknown }).error;
      assert.ok(error instanceof CairnError && error.code === "OBJECT_EXISTS", String(error));
      assert.match(
        error.message,
        /^Another attempt of job 1 stored backups\/files\/\S+ after this attempt started, and has not listed it: nothing was replaced/,
      );
      assert.deepEqual(await read(services, key()), OTHER);
      assert.equal(await services.repository.stat(manifestKey(key())), null);
      assert.deepEqual(await partialWrites(services.repository).list(), []);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("publish: a manifest listed meanwhile by a fenced-out attempt is replaced while this attempt holds the lease", async () => {
  await withTempDir(async (dir) => {
    const services = await setup(dir);
    try {
      const { key, outcome } = await attempt(services, {
        confirmLease: async (call, k) => {
          // The frozen attempt lists its bytes (removed at this attempt's start) after
          // this attempt's last lease check: only the first call is that check.
          if (call === 1) await writeManifest(services.repository, otherManifest(k, 1));
        },
      });
      const result = (outcome as { result: Record<string, unknown> }).result;
      assert.ok(result, JSON.stringify(outcome));
      const stored = await read(services, key());
      const manifest = await readManifest(services.repository, key());
      assert.equal(manifest.sha256, sha(stored), "the listed manifest names the stored bytes");
      assert.equal(result.sha256, sha(stored));
      assert.notEqual(manifest.sha256, sha(OTHER));
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("publish: an attempt that lost its lease leaves another attempt's manifest as it is", async () => {
  await withTempDir(async (dir) => {
    const services = await setup(dir);
    try {
      const { key, outcome } = await attempt(services, {
        confirmLease: async (call, k) => {
          if (call === 1) await writeManifest(services.repository, otherManifest(k, 1));
          else throw new LeaseLostError(1);
        },
      });
      assert.ok((outcome as { error: unknown }).error instanceof LeaseLostError);
      const manifest = await readManifest(services.repository, key());
      assert.equal(manifest.sha256, sha(OTHER), "not replaced");
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("publish: a manifest of another job under the key is never touched", async () => {
  await withTempDir(async (dir) => {
    const services = await setup(dir);
    try {
      const { key, outcome } = await attempt(services, {
        confirmLease: async (call, k) => {
          if (call === 1) await writeManifest(services.repository, otherManifest(k, 99));
        },
      });
      const error = (outcome as { error: unknown }).error;
      assert.ok(error instanceof CairnError && error.code === "OBJECT_EXISTS", String(error));
      assert.match(error.message, /holds a backup of job 99, not of this job/);
      assert.equal((await readManifest(services.repository, key())).job_id, 99);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("publish: a mirror reference list is never replaced; an identical one is accepted", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(dir);
    const listing = "backups/m/20260101T000000000Z-manual.mirror.json.zst";
    const a = "a".repeat(64), b = "b".repeat(64);
    await writeRefs(repo, listing, [b, a]);
    await writeRefs(repo, listing, [a, b, a]); // the same list
    await assert.rejects(
      writeRefs(repo, listing, [a]),
      (e) => e instanceof CairnError && e.code === "OBJECT_EXISTS",
    );
    const refs = JSON.parse(await new Response(await repo.get(mirrorRefsKey(listing))).text());
    assert.deepEqual(refs.sha256, [a, b]);
  });
});

Deno.test({
  name:
    "publish: a mirror run that finds a reference list without a listing under its job's key (a stopped attempt's) removes it and publishes its own",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const s3 = await startS3(["src"]);
      try {
        const c = new S3Client({
          endpoint: s3.endpoint,
          region: "us-east-1",
          forcePathStyle: true,
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        });
        await c.send(new PutObjectCommand({ Bucket: "src", Key: "a.txt", Body: "alpha" }));
        const svc = await testServices(dir, {
          assets: {
            kind: "s3",
            endpoint: s3.endpoint,
            bucket: "src",
            access_key_id: s3.accessKeyId,
            secret_access_key: s3.secretAccessKey,
          },
        });
        try {
          // The key an earlier attempt fixed on the job, and the reference list it wrote
          // before it stopped (it never listed its run).
          const key = "backups/assets/20260101T000000000Z-manual.mirror.json.zst";
          const stale = "f".repeat(64);
          await writeRefs(svc.repository, key, [stale]);
          const job = await run(svc, { kind: "backup", client_name: "assets", key });
          assert.equal(job.status, "completed", job.error ?? "");
          assert.equal(job.key, key);
          const refs = JSON.parse(
            await new Response(await svc.repository.get(mirrorRefsKey(key))).text(),
          );
          assert.deepEqual(refs.sha256, [sha(new TextEncoder().encode("alpha"))]);
          assert.equal((await readManifest(svc.repository, key)).job_id, job.id);
        } finally {
          await svc.store.close();
        }
      } finally {
        await s3.stop();
      }
    }),
});

/**
 * The read side of the pipeline (src/pipeline/read.ts) for artifacts large enough to
 * be decoded in a worker: one read for file() and for a verify, and damaged or
 * truncated stored bytes reported as damage (never a crash, never a scratch file
 * left behind, never a plain byte before the verdict for file()).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { FsRepository } from "../../src/repository/fs.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import type { Repository } from "../../src/repository/repository.ts";
import { artifactAccess, verifyingAccess } from "../../src/pipeline/read.ts";
import { writeArtifact } from "../../src/pipeline/write.ts";
import { OFF_THREAD_MIN_BYTES } from "../../src/pipeline/offthread.ts";
import type { Transform } from "../../src/pipeline/transforms.ts";
import { Scratch } from "../../src/io/scratch.ts";
import { CairnError } from "../../src/errors.ts";
import { randomBytes, withTempDir } from "../helpers/tmp.ts";

const KEY = "backups/c/20261130T000000000Z-manual.rdb";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Half random (so the stored bytes stay above OFF_THREAD_MIN_BYTES), half text. */
function plainBytes(): Uint8Array {
  const b = new Uint8Array(OFF_THREAD_MIN_BYTES * 2);
  b.set(randomBytes(OFF_THREAD_MIN_BYTES + (1 << 20)));
  for (let i = OFF_THREAD_MIN_BYTES + (1 << 20); i < b.length; i++) b[i] = 97 + (i % 26);
  return b;
}

function inChunks(b: Uint8Array, size = 65536): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= b.length) return c.close();
      c.enqueue(b.slice(at, at += size));
    },
  });
}

async function stored(
  dir: string,
  transforms: Transform[],
  plain: Uint8Array,
): Promise<{ repo: Repository; manifest: Manifest; path: string }> {
  const repo = new FsRepository(join(dir, "repo"));
  const key = KEY + transforms.map((t) => t.name === "zstd" ? ".zst" : `.${t.name}`).join("");
  const written = await writeArtifact(repo, key, inChunks(plain), transforms);
  assert.deepEqual(written.plain, { size: plain.length, sha256: sha(plain) });
  assert.ok(written.stored.size >= OFF_THREAD_MIN_BYTES, "the stored bytes take the worker path");
  const manifest: Manifest = {
    format_version: 2,
    key,
    client_name: "c",
    kind: "redis",
    label: "manual",
    created_at: "2026-11-30T00:00:00.000Z",
    size_bytes: written.stored.size,
    sha256: written.stored.sha256,
    job_id: null,
    schedule_id: null,
    tool_versions: {},
    facts: {},
    transforms,
    plain_size_bytes: written.plain.size,
    plain_sha256: written.plain.sha256,
  };
  return { repo, manifest, path: join(dir, "repo", key) };
}

function readOptions(dir: string, identities: string[] = []) {
  return {
    identities,
    scratch: new Scratch(join(dir, "scratch")),
    signal: new AbortController().signal,
  };
}

async function scratchFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  await walk(join(dir, "scratch")).catch(() => {});
  return out;
}

async function counting(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

Deno.test("a large artifact comes back whole through the worker: file(), open() and a verify", async () => {
  await withTempDir(async (dir) => {
    const id = await generateIdentity();
    const r = await identityToRecipient(id);
    const plain = plainBytes();
    for (
      const t of [
        [{ name: "zstd", level: 3 }],
        [{ name: "zstd", level: 3 }, { name: "age", recipients: [r] }],
      ] as Transform[][]
    ) {
      await Deno.remove(join(dir, "repo"), { recursive: true }).catch(() => {});
      const { repo, manifest } = await stored(dir, t, plain);
      const options = readOptions(dir, [id]);
      const access = artifactAccess(repo, manifest, options);
      const file = await access.file();
      assert.equal(sha(await Deno.readFile(file.path)), sha(plain));
      await file.release();
      assert.equal(await counting(await access.open()), plain.length);
      const v = verifyingAccess(repo, manifest, options);
      // The kind reads a part only: settle() reads the rest and proves both sha256s.
      const reader = (await v.access.open()).getReader();
      assert.ok(!(await reader.read()).done);
      await reader.cancel();
      await v.settle();
      assert.deepEqual(await scratchFiles(dir), []);
    }
  });
});

/** Damage to the stored file that each must be reported as damage. */
const DAMAGE: Array<[string, (b: Uint8Array) => Uint8Array]> = [
  // In a zstd block: node:zlib's decoder throws "Data corruption detected" outside any
  // handler under Deno 2.9.6, which on the main thread would end the process.
  ["a flipped byte in a zstd block", (b) => {
    b[b.length >> 1] ^= 0x04;
    return b;
  }],
  ["a flipped byte in a compressed block", (b) => {
    b[b.length - 2000] ^= 0x04;
    return b;
  }],
  ["a flipped frame checksum", (b) => {
    b[b.length - 2] ^= 0xff;
    return b;
  }],
  ["a truncated frame", (b) => b.subarray(0, b.length - (b.length >> 2))],
];

Deno.test("damaged or truncated zstd frames fail file() and a verify as damage, with no scratch left", async () => {
  await withTempDir(async (dir) => {
    const plain = plainBytes();
    const t: Transform[] = [{ name: "zstd", level: 3 }];
    const { repo, manifest, path } = await stored(dir, t, plain);
    const good = await Deno.readFile(path);
    for (const [what, damage] of DAMAGE) {
      await Deno.writeFile(path, damage(new Uint8Array(good)));
      const options = readOptions(dir);
      await assert.rejects(
        artifactAccess(repo, manifest, options).file(),
        (e) => e instanceof CairnError && /is damaged: sha256/.test(e.message),
        what,
      );
      assert.deepEqual(await scratchFiles(dir), [], what);
      // open() proves the stored bytes before its first plain byte.
      await assert.rejects(
        artifactAccess(repo, manifest, options).open(),
        (e) => e instanceof CairnError && /is damaged: sha256/.test(e.message),
        what,
      );
      const v = verifyingAccess(repo, manifest, options);
      const seen = await counting(await v.access.open()).catch((e) => e);
      assert.ok(
        seen instanceof CairnError && /is damaged: sha256/.test(seen.message),
        `${what}: ${seen}`,
      );
      await assert.rejects(
        v.settle(),
        (e) => e instanceof CairnError && e.code === "CHECKSUM_MISMATCH",
        what,
      );
    }
    // Still here, and the good bytes still read.
    await Deno.writeFile(path, good);
    const file = await artifactAccess(repo, manifest, readOptions(dir)).file();
    assert.equal(sha(await Deno.readFile(file.path)), sha(plain));
    await file.release();
  });
});

Deno.test("a verify whose kind opens nothing still reads and proves the whole artifact", async () => {
  await withTempDir(async (dir) => {
    const { repo, manifest, path } = await stored(dir, [{ name: "zstd", level: 3 }], plainBytes());
    const good = await Deno.readFile(path);
    const v = verifyingAccess(repo, manifest, readOptions(dir));
    await v.settle();
    good[good.length - 10] ^= 1;
    await Deno.writeFile(path, good);
    const damaged = verifyingAccess(repo, manifest, readOptions(dir));
    await assert.rejects(damaged.settle(), /is damaged: sha256/);
  });
});

Deno.test("an artifact below the worker threshold keeps the check-first path and the same verdicts", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(join(dir, "repo"));
    const plain = new TextEncoder().encode("small artifact ".repeat(10_000));
    const t: Transform[] = [{ name: "zstd", level: 3 }];
    const key = KEY + ".zst";
    const written = await writeArtifact(repo, key, inChunks(plain), t);
    assert.ok(written.stored.size < OFF_THREAD_MIN_BYTES);
    const manifest: Manifest = {
      format_version: 2,
      key,
      client_name: "c",
      kind: "redis",
      label: "manual",
      created_at: "2026-11-30T00:00:00.000Z",
      size_bytes: written.stored.size,
      sha256: written.stored.sha256,
      job_id: null,
      schedule_id: null,
      tool_versions: {},
      facts: {},
      transforms: t,
      plain_size_bytes: written.plain.size,
      plain_sha256: written.plain.sha256,
    };
    const file = await artifactAccess(repo, manifest, readOptions(dir)).file();
    assert.equal(sha(await Deno.readFile(file.path)), sha(plain));
    await file.release();
    const path = join(dir, "repo", key);
    const bytes = await Deno.readFile(path);
    bytes[bytes.length >> 1] ^= 0x04;
    await Deno.writeFile(path, bytes);
    await assert.rejects(
      artifactAccess(repo, manifest, readOptions(dir)).file(),
      /is damaged: sha256/,
    );
    const v = verifyingAccess(repo, manifest, readOptions(dir));
    await assert.rejects(async () => counting(await v.access.open()), /is damaged: sha256/);
    await assert.rejects(v.settle(), /is damaged: sha256/);
  });
});

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CairnError } from "../../src/errors.ts";
import {
  canLink,
  isObjectExists,
  linkBatched,
  moveBatched,
  moveObject,
  partialWrites,
  putBatched,
  putIfAbsent,
  syncBatch,
} from "../../src/repository/capabilities.ts";
import { checkWritable } from "../../src/repository/preflight.ts";
import type { Repository } from "../../src/repository/repository.ts";

/**
 * stat() without modified_at, after checking that it is a time within the last hour
 * (both implementations know it: a file's mtime, an object's LastModified).
 */
async function bareStat(repo: Repository, key: string) {
  const info = await repo.stat(key);
  if (info === null) return null;
  const { modified_at, ...rest } = info;
  assert.ok(
    typeof modified_at === "number" && Math.abs(Date.now() - modified_at) < 3_600_000,
    `modified_at of ${key}: ${modified_at}`,
  );
  return rest;
}

const bytes = (n: number, seed = 1) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
};
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const chunked = (b: Uint8Array, size = 7000) =>
  ReadableStream.from((function* () {
    for (let i = 0; i < b.length; i += size) yield b.slice(i, i + size);
  })());
/** A byte stream, as an HTTP body or a child's stdout is: readable into the caller's buffer. */
const byteChunked = (b: Uint8Array, size = 7000) => {
  let i = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      if (i >= b.length) {
        c.close();
        c.byobRequest?.respond(0);
        return;
      }
      c.enqueue(b.slice(i, i + size));
      i += size;
    },
  });
};
/** Every source shape a put must take the same way. */
const SOURCES = [
  { kind: "a stream", type: undefined, chunked },
  { kind: "a byte stream", type: "bytes" as const, chunked: byteChunked },
];
const read = async (s: ReadableStream<Uint8Array>) =>
  new Uint8Array(await new Response(s).arrayBuffer());

/**
 * The same repository seen through its five verbs only (no capability): what a
 * backend without them gets, so each generic fallback runs against a real backend.
 */
export function verbsOnly(repo: Repository): Repository {
  return {
    kind: repo.kind,
    location: repo.location,
    capabilities: {},
    put: (key, body, options) => repo.put(key, body, options),
    get: (key, range) => repo.get(key, range),
    stat: (key) => repo.stat(key),
    list: (prefix) => repo.list(prefix),
    remove: (key) => repo.remove(key),
  };
}

/**
 * The contract every Repository keeps. `capabilities` names the optional ones the
 * backend states; each capability is exercised as the backend provides it and
 * through its generic fallback (verbsOnly).
 */
export function repositoryConformance(
  name: string,
  make: () => Promise<{
    repo: Repository;
    cleanup: () => Promise<void>;
    /** The requests the backend sent so far ("METHOD /path?query"), where a proxy sees them. */
    requests?: () => string[];
  }>,
  capabilities: ReadonlyArray<"move" | "batch" | "partialWrites" | "link" | "putIfAbsent">,
): void {
  let requests: (() => string[]) | undefined;
  const test = (title: string, fn: (repo: Repository) => Promise<void>) =>
    Deno.test(`${name} repository: ${title}`, async () => {
      const made = await make();
      requests = made.requests;
      try {
        await fn(made.repo);
      } finally {
        await made.cleanup();
      }
    });

  for (const source of SOURCES) {
    test(`put streams ${source.kind}, hashes and stores; get and stat read it back`, async (repo) => {
      // Larger than the fs repository's 1 MiB write buffer, in chunks that straddle it.
      const data = bytes(2_500_000);
      const put = await repo.put("backups/c/a.bin", source.chunked(data, 300_001));
      assert.equal(put.size, data.length);
      assert.equal(put.sha256, sha(data));
      assert.deepEqual(await bareStat(repo, "backups/c/a.bin"), {
        key: "backups/c/a.bin",
        size: data.length,
      });
      assert.deepEqual(await read(await repo.get("backups/c/a.bin")), data);
      const small = bytes(300_000, 2);
      assert.equal((await repo.put("backups/c/b.bin", source.chunked(small))).sha256, sha(small));
      assert.deepEqual(await read(await repo.get("backups/c/b.bin")), small);
      const empty = await repo.put("backups/c/empty.bin", source.chunked(new Uint8Array(0)));
      assert.deepEqual(empty, { size: 0, sha256: sha(new Uint8Array(0)) });
    });
  }

  test(`states exactly its capabilities: ${capabilities.join(", ") || "none"}`, (repo) => {
    assert.deepEqual(Object.keys(repo.capabilities).sort(), [...capabilities].sort());
    return Promise.resolve();
  });

  /** A test run twice: on the repository, and on its verbs alone (the fallbacks). */
  const both = (title: string, fn: (repo: Repository) => Promise<void>) => {
    test(title, fn);
    test(`${title} (verbs only: the generic fallback)`, (repo) => fn(verbsOnly(repo)));
  };

  both("batched puts and moves read back before and after syncBatch", async (repo) => {
    // Across directories, more objects than the fs repository's 8 sync lanes.
    const keys = Array.from({ length: 40 }, (_, i) => `mirrors/m/${"abc"[i % 3]}/${i}.bin`);
    for (const [i, key] of keys.entries()) {
      const put = await putBatched(repo, key, chunked(bytes(5000, i)));
      assert.deepEqual(put, { size: 5000, sha256: sha(bytes(5000, i)) });
      assert.deepEqual(await read(await repo.get(key)), bytes(5000, i));
    }
    await moveBatched(repo, keys[0], "mirrors/m/moved/0.bin");
    assert.equal(await repo.stat(keys[0]), null);
    await syncBatch(repo);
    await syncBatch(repo); // nothing left to sync is fine
    assert.deepEqual(await read(await repo.get("mirrors/m/moved/0.bin")), bytes(5000, 0));
    for (const [i, key] of keys.entries()) {
      if (i > 0) assert.deepEqual(await read(await repo.get(key)), bytes(5000, i));
    }
  });

  test("ranged reads", async (repo) => {
    const data = bytes(100_000);
    await repo.put("r/x", chunked(data));
    assert.deepEqual(await read(await repo.get("r/x", { start: 10, end: 19 })), data.slice(10, 20));
    assert.deepEqual(await read(await repo.get("r/x", { start: 99_990 })), data.slice(99_990));
  });

  test("a missing key: stat is null, get is BACKUP_NOT_FOUND, remove is fine", async (repo) => {
    assert.equal(await repo.stat("nope/x"), null);
    await assert.rejects(
      repo.get("nope/x"),
      (e) => e instanceof CairnError && e.code === "BACKUP_NOT_FOUND",
    );
    await repo.remove("nope/x");
  });

  test("list by prefix, sorted, nothing outside the prefix", async (repo) => {
    for (const k of ["backups/a/1", "backups/a/2", "backups/b/1", "mirrors/a/x y/z"]) {
      await repo.put(k, chunked(bytes(10)));
    }
    const keys = async (p: string) => {
      const out: string[] = [];
      for await (const o of repo.list(p)) out.push(o.key);
      return out;
    };
    assert.deepEqual(await keys("backups/a/"), ["backups/a/1", "backups/a/2"]);
    assert.deepEqual(await keys("backups/"), ["backups/a/1", "backups/a/2", "backups/b/1"]);
    assert.deepEqual(await keys("mirrors/a/x y/"), ["mirrors/a/x y/z"]);
    assert.deepEqual(await keys("backups/zz/"), []);
  });

  test("remove deletes", async (repo) => {
    await repo.put("d/x", chunked(bytes(10)));
    await repo.remove("d/x");
    assert.equal(await repo.stat("d/x"), null);
  });

  for (const { kind, type } of SOURCES) {
    test(`a failing source (${kind}) leaves no key and no partial object`, async (repo) => {
      const failing = new ReadableStream({
        type,
        start(c) {
          c.enqueue(bytes(50_000));
        },
        pull(c) {
          c.error(new Error("source died"));
        },
      });
      await assert.rejects(repo.put("f/x", failing), /source died/);
      assert.equal(await repo.stat("f/x"), null);
      assert.deepEqual(await partialWrites(repo).list(), [], "no leftovers");
      assert.equal(await partialWrites(repo).sweep(-1), 0, "none to sweep");
      // The repository is still fine for the next put.
      const data = bytes(70_000);
      assert.equal((await repo.put("f/y", chunked(data))).sha256, sha(data));
    });

    test(`an aborted put (${kind}) leaves no key`, async (repo) => {
      const controller = new AbortController();
      const endless = new ReadableStream({
        type,
        pull(c) {
          c.enqueue(bytes(64 * 1024));
          controller.abort(new Error("stop"));
        },
      });
      await assert.rejects(repo.put("g/x", endless, { signal: controller.signal }));
      assert.equal(await repo.stat("g/x"), null);
    });

    test(`an abort while the source (${kind}) waits for bytes rejects with its reason and cancels it`, async (repo) => {
      const controller = new AbortController();
      let cancelled: unknown = null;
      const stalled = new ReadableStream({
        type,
        start(c) {
          c.enqueue(bytes(10_000));
        },
        pull: () => new Promise(() => {}), // the source never sends another byte
        cancel(reason) {
          cancelled = reason;
        },
      });
      const stop = new Error("cancelled by the operator");
      setTimeout(() => controller.abort(stop), 50);
      await assert.rejects(
        repo.put("s/x", stalled, { signal: controller.signal }),
        (e) => e === stop,
      );
      assert.equal(cancelled, stop);
      assert.equal(await repo.stat("s/x"), null);
      const data = bytes(70_000);
      assert.equal((await repo.put("s/y", chunked(data))).sha256, sha(data));
    });
  }

  test("keys that could escape are refused", async (repo) => {
    for (const key of ["../x", "/etc/passwd", "a/../../x", "a\0b", ""]) {
      await assert.rejects(
        repo.put(key, chunked(bytes(1))),
        (e) => e instanceof CairnError && e.code === "INVALID_KEY",
        key,
      );
      await assert.rejects(
        repo.get(key),
        (e) => e instanceof CairnError && e.code === "INVALID_KEY",
        key,
      );
    }
  });

  both("move gives an object another key, replacing what was there", async (repo) => {
    const data = bytes(3000, 5);
    await repo.put("mirrors/c/old/a.bin", chunked(data));
    await repo.put("mirrors/c/new%2F/a.bin", chunked(bytes(10, 9)));
    await moveObject(repo, "mirrors/c/old/a.bin", "mirrors/c/new%2F/a.bin");
    assert.equal(await repo.stat("mirrors/c/old/a.bin"), null);
    assert.deepEqual(await bareStat(repo, "mirrors/c/new%2F/a.bin"), {
      key: "mirrors/c/new%2F/a.bin",
      size: 3000,
    });
    assert.deepEqual(await read(await repo.get("mirrors/c/new%2F/a.bin")), data);
    // The old key's directory is gone with it: a file may now take its name.
    await repo.put("mirrors/c/old", chunked(bytes(4)));
    assert.equal((await repo.stat("mirrors/c/old"))?.size, 4);
    await assert.rejects(
      moveObject(repo, "mirrors/c/missing", "mirrors/c/elsewhere"),
      (e) => e instanceof CairnError && e.code === "BACKUP_NOT_FOUND",
    );
    await assert.rejects(
      moveObject(repo, "mirrors/c/missing", "mirrors/c/missing"),
      (e) => e instanceof CairnError && e.code === "BACKUP_NOT_FOUND",
    );
    // Onto itself: the object stays.
    await moveObject(repo, "mirrors/c/new%2F/a.bin", "mirrors/c/new%2F/a.bin");
    assert.deepEqual(await read(await repo.get("mirrors/c/new%2F/a.bin")), data);
  });

  both(
    "link shares an object under a second key where the backend links; elsewhere nothing changes",
    async (repo) => {
      const data = bytes(4000, 3);
      await repo.put("mirrors/l/a", chunked(data));
      await repo.put("mirrors/l/b", chunked(bytes(10, 1)));
      const linked = await linkBatched(repo, "mirrors/l/a", "mirrors/l/b");
      assert.equal(linked, canLink(repo));
      await syncBatch(repo);
      assert.deepEqual(await read(await repo.get("mirrors/l/b")), linked ? data : bytes(10, 1));
      // Either way each key then changes alone.
      await repo.put("mirrors/l/a", chunked(bytes(7, 2)));
      assert.deepEqual(await read(await repo.get("mirrors/l/b")), linked ? data : bytes(10, 1));
      await repo.remove("mirrors/l/a");
      assert.equal((await repo.stat("mirrors/l/b"))?.size, linked ? 4000 : 10);
      assert.equal(await linkBatched(repo, "mirrors/l/missing", "mirrors/l/b"), false);
      assert.equal((await repo.stat("mirrors/l/b"))?.size, linked ? 4000 : 10);
    },
  );

  both(
    "putIfAbsent refuses an existing key, leaves its bytes and removes its own part",
    async (repo) => {
      const kept = bytes(2_500_000, 3);
      await repo.put("backups/c/k.bin", chunked(kept, 300_001));
      const before = requests?.().length ?? 0;
      // One small body (a single PutObject in S3) and one of two parts (a multipart
      // upload, refused at its completion).
      for (const size of [40_000, 11 * 1024 * 1024]) {
        await assert.rejects(
          putIfAbsent(repo, "backups/c/k.bin", chunked(bytes(size, 4), 1024 * 1024)),
          (e) => isObjectExists(e) && /backups\/c\/k\.bin already exists/.test(String(e)),
          `${size} bytes`,
        );
        assert.deepEqual(await read(await repo.get("backups/c/k.bin")), kept, `${size} bytes`);
        assert.deepEqual(await partialWrites(repo).list(), [], "no part left behind");
      }
      const sent = requests?.().slice(before) ?? [];
      if (repo.capabilities.putIfAbsent && repo.kind === "s3") {
        // The refused completion's upload was aborted: its parts are not left in the bucket.
        const complete = sent.findIndex((r) => /^POST .*k\.bin\?uploadId=/.test(r));
        assert.ok(complete >= 0, sent.join("\n"));
        assert.ok(
          sent.slice(complete + 1).some((r) => /^DELETE .*k\.bin\?uploadId=/.test(r)),
          sent.join("\n"),
        );
      }
      // An absent key is written, and reads back.
      const fresh = bytes(11 * 1024 * 1024, 6);
      const put = await putIfAbsent(repo, "backups/c/new.bin", chunked(fresh, 1024 * 1024));
      assert.deepEqual(put, { size: fresh.length, sha256: sha(fresh) });
      assert.deepEqual(await read(await repo.get("backups/c/new.bin")), fresh);
      assert.deepEqual(await partialWrites(repo).list(), []);
      // Nothing else appeared (an S3 probe object is removed after the probe).
      assert.deepEqual((await Array.fromAsync(repo.list(""))).map((o) => o.key), [
        "backups/c/k.bin",
        "backups/c/new.bin",
      ]);
    },
  );

  if (capabilities.includes("putIfAbsent")) {
    // Only the capability is atomic: the fallback's stat-then-put loses this race.
    test("putIfAbsent: of two racing writes of one key exactly one lands, whole", async (repo) => {
      const slow = (seed: number) => {
        let sent = 0;
        return new ReadableStream<Uint8Array>({
          async pull(c) {
            if (sent >= 6) return c.close();
            await new Promise((r) => setTimeout(r, 30));
            c.enqueue(bytes(100_000, seed + sent++));
          },
        });
      };
      const results = await Promise.allSettled(
        [1, 50].map((seed) => putIfAbsent(repo, "backups/c/race.bin", slow(seed))),
      );
      const won = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
      const lost = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
      assert.equal(won.length, 1, JSON.stringify(results));
      assert.ok(isObjectExists(lost[0]), String(lost[0]));
      const stored = await read(await repo.get("backups/c/race.bin"));
      assert.equal(sha(stored), won[0].sha256);
      assert.deepEqual(await partialWrites(repo).list(), []);
    });
  }

  test("remove leaves no directory that would keep a name from a file", async (repo) => {
    await repo.put("p/photos/1.jpg", chunked(bytes(5)));
    await repo.put("p/keep.txt", chunked(bytes(5)));
    await repo.remove("p/photos/1.jpg");
    await repo.put("p/photos", chunked(bytes(7)));
    assert.equal((await repo.stat("p/photos"))?.size, 7);
    assert.equal((await repo.stat("p/keep.txt"))?.size, 5);
  });

  test("the write check passes on a healthy repository and leaves nothing behind", async (repo) => {
    await checkWritable(repo);
    assert.deepEqual(await Array.fromAsync(repo.list("")), []);
    assert.deepEqual(await partialWrites(repo).list(), []);
  });
}

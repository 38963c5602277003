/**
 * The fs repository's link capability (issue 21 §3, dedup): one stored file under two
 * keys, checked through a pinned name before it replaces the target, and each key
 * affected only by what is done to that key.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FsRepository } from "../../src/repository/fs.ts";
import { canLink, linkBatched, syncBatch } from "../../src/repository/capabilities.ts";
import { S3Repository } from "../../src/repository/s3.ts";
import { withTempDir } from "../helpers/tmp.ts";

const bytes = (t: string) => ReadableStream.from([new TextEncoder().encode(t)]);
const text = async (repo: FsRepository, key: string) =>
  await new Response(await repo.get(key)).text();
const ino = async (repo: FsRepository, key: string) =>
  (await Deno.stat(join(repo.root, ...key.split("/")))).ino;
const tmpFiles = async (repo: FsRepository) =>
  await Array.fromAsync(Deno.readDir(join(repo.root, ".tmp"))).catch(() => []);

Deno.test("fs link: the target becomes the source's file, replacing what it held; each key then changes alone", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(join(dir, "repo"));
    assert.ok(canLink(repo));
    await repo.put("a/one", bytes("shared bytes"));
    await repo.put("b/two", bytes("old bytes of two"));
    assert.equal(await repo.capabilities.link!("a/one", "b/two"), true);
    assert.equal(await text(repo, "b/two"), "shared bytes");
    assert.equal(await ino(repo, "a/one"), await ino(repo, "b/two"));
    assert.equal((await Deno.stat(join(repo.root, "a", "one"))).nlink, 2);
    // A new name under a directory that does not exist yet.
    assert.equal(await repo.capabilities.link!("a/one", "c/d/three"), true);
    assert.equal(await text(repo, "c/d/three"), "shared bytes");

    // A put onto one key is a new file renamed over it: the others keep their bytes.
    await repo.put("a/one", bytes("new bytes of one"));
    assert.equal(await text(repo, "a/one"), "new bytes of one");
    assert.equal(await text(repo, "b/two"), "shared bytes");
    assert.equal(await text(repo, "c/d/three"), "shared bytes");
    // A move of one key takes only that name along.
    await repo.capabilities.move!("b/two", "v/kept");
    assert.equal(await repo.stat("b/two"), null);
    assert.equal(await text(repo, "v/kept"), "shared bytes");
    assert.equal(await text(repo, "c/d/three"), "shared bytes");
    // A move onto a key that shares its file with another replaces only that name.
    await repo.put("e/five", bytes("bytes of five"));
    assert.equal(await repo.capabilities.link!("c/d/three", "e/four"), true);
    await repo.capabilities.move!("e/five", "e/four");
    assert.equal(await text(repo, "e/four"), "bytes of five");
    assert.equal(await text(repo, "c/d/three"), "shared bytes");
    assert.equal(await text(repo, "v/kept"), "shared bytes");
    // A remove of one key removes only that name.
    await repo.remove("v/kept");
    assert.equal(await text(repo, "c/d/three"), "shared bytes");
    assert.deepEqual(await tmpFiles(repo), []);
  });
});

Deno.test("fs link: a check that says no, or a source that is absent, leaves the target as it was and nothing in .tmp", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(join(dir, "repo"));
    await repo.put("from", bytes("source"));
    await repo.put("to", bytes("target"));
    let seen = "";
    const refused = await repo.capabilities.link!("from", "to", async (body) => {
      seen = await new Response(body).text();
      return false;
    });
    assert.equal(refused, false);
    assert.equal(seen, "source");
    assert.equal(await text(repo, "to"), "target");
    assert.equal(await repo.capabilities.link!("missing", "to"), false);
    assert.equal(await text(repo, "to"), "target");
    // A check that reads nothing and says no closes the pinned file too.
    assert.equal(await repo.capabilities.link!("from", "to", () => Promise.resolve(false)), false);
    assert.deepEqual(await tmpFiles(repo), []);
  });
});

Deno.test("fs link: the check sees the bytes the target gets, even when the source is replaced during the check", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(join(dir, "repo"));
    await repo.put("from", bytes("checked bytes"));
    await repo.put("to", bytes("target"));
    const linked = await repo.capabilities.link!("from", "to", async (body) => {
      await repo.put("from", bytes("replaced meanwhile"));
      return await new Response(body).text() === "checked bytes";
    });
    assert.equal(linked, true);
    assert.equal(await text(repo, "to"), "checked bytes");
    assert.equal(await text(repo, "from"), "replaced meanwhile");
  });
});

Deno.test("fs link through the batch: linked at once, and a batch sync covers it", async () => {
  await withTempDir(async (dir) => {
    let syncs = 0;
    const repo = new FsRepository(join(dir, "repo"), {
      syncFilesystem: () => {
        syncs++;
        return Promise.resolve(true);
      },
    });
    await repo.capabilities.batch!.put("x", bytes("batched"));
    assert.equal(await linkBatched(repo, "x", "y"), true);
    assert.equal(await text(repo, "y"), "batched");
    await syncBatch(repo);
    assert.equal(syncs, 1);
    // Nothing left to sync: a second sync does not run.
    await syncBatch(repo);
    assert.equal(syncs, 1);
    assert.equal(await linkBatched(repo, "x", "z"), true);
    await syncBatch(repo);
    assert.equal(syncs, 2, "a link alone is synced by the next batch sync");
  });
});

const SHM = "/dev/shm";
const otherDevice = (() => {
  try {
    return Deno.statSync(SHM).dev !== Deno.statSync(Deno.makeTempDirSync()).dev;
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "fs link: a link the filesystem cannot make (another filesystem inside the repository) is false, not an error",
  ignore: !otherDevice,
  fn: async () => {
    await withTempDir(async (dir) => {
      const elsewhere = await Deno.makeTempDir({ dir: SHM });
      try {
        await Deno.mkdir(join(dir, "repo"), { recursive: true });
        await Deno.symlink(elsewhere, join(dir, "repo", "mounted"));
        const repo = new FsRepository(join(dir, "repo"));
        // Written there directly: a put's rename from .tmp/ cannot cross either.
        await Deno.writeTextFile(join(elsewhere, "a"), "on another filesystem");
        await repo.put("b", bytes("here"));
        assert.equal(await repo.capabilities.link!("mounted/a", "b"), false);
        assert.equal(await text(repo, "b"), "here");
        assert.deepEqual(await tmpFiles(repo), []);
      } finally {
        await Deno.remove(elsewhere, { recursive: true });
      }
    });
  },
});

Deno.test("linkBatched where the repository has no links: false, nothing done", async () => {
  const s3 = new S3Repository({
    kind: "s3",
    endpoint: "http://127.0.0.1:1",
    region: "us-east-1",
    bucket: "b",
    prefix: "",
    access_key_id: "k",
    secret_access_key: "s",
    force_path_style: true,
  });
  assert.equal(canLink(s3), false);
  assert.equal(await linkBatched(s3, "a", "b"), false);
});

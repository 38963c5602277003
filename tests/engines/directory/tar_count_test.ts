import assert from "node:assert/strict";
import { join } from "node:path";
import {
  countingTransform,
  countMember,
  countTar,
  emptyCounts,
} from "../../../src/engines/directory/tar_count.ts";
import { withTempDir } from "../../helpers/tmp.ts";
import { pyBuild } from "../../helpers/tree.ts";

Deno.test("tar count: each member type is counted once, sparse files by their real size", () => {
  const c = emptyCounts();
  countMember(c, { name: "./", type: "directory" });
  countMember(c, { name: "./a/", type: "directory" });
  countMember(c, { name: "./f", type: "file", size: 10 });
  countMember(c, { name: "./c", type: "contiguous-file", size: 5 });
  countMember(c, {
    name: "./GNUSparseFile.0/s",
    type: "file",
    size: 1536,
    pax: { "GNU.sparse.realsize": "67108868", "GNU.sparse.name": "./s" },
  });
  countMember(c, { name: "./h", type: "link", size: 0 });
  countMember(c, { name: "./l", type: "symlink" });
  countMember(c, { name: "./p", type: "fifo" });
  countMember(c, { name: "./dev", type: "character-device" });
  assert.deepEqual(c, {
    files: 3,
    bytes: 10 + 5 + 67108868,
    directories: 1,
    symlinks: 1,
    hardlinks: 1,
    special: 2,
    root: true,
  });
  const legacy = emptyCounts();
  countMember(legacy, { name: "a/", type: "directory" });
  assert.equal(legacy.root, false);
});

async function gnuTar(dir: string): Promise<Uint8Array> {
  const out = await new Deno.Command("tar", {
    args: ["--create", "--file=-", "--format=posix", "--sparse", "--directory", dir, "."],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  return out.stdout;
}

Deno.test("tar count: a GNU tar stream passes through unchanged and is counted", async () => {
  await withTempDir(async (dir) => {
    await pyBuild(
      join(dir, "t"),
      `open(b"caf\\xe9", "wb").write(b"x" * 1000)\nos.link(b"caf\\xe9", b"h")\nos.symlink(b"x", b"l")\nos.mkdir(b"d")\nf = open(b"d/sparse", "wb"); f.seek(10 << 20); f.write(b"end"); f.close()`,
    );
    const tar = await gnuTar(join(dir, "t"));
    const { transform, counts } = countingTransform();
    const chunks = [];
    for (let i = 0; i < tar.length; i += 7777) chunks.push(tar.slice(i, i + 7777));
    const passed = new Uint8Array(
      await new Response(ReadableStream.from(chunks).pipeThrough(transform)).arrayBuffer(),
    );
    assert.deepEqual(passed, tar);
    assert.deepEqual(await counts, {
      files: 2,
      bytes: 1000 + (10 << 20) + 3,
      directories: 1,
      symlinks: 1,
      hardlinks: 1,
      special: 0,
      root: true,
    });
  });
});

Deno.test("tar count: a truncated or foreign stream is refused", async () => {
  await withTempDir(async (dir) => {
    await pyBuild(join(dir, "t"), `open("a", "wb").write(os.urandom(5000))`);
    const tar = await gnuTar(join(dir, "t"));
    await assert.rejects(
      countTar(ReadableStream.from([tar.slice(0, 2048)])),
      /not a readable tar stream/,
    );
    await assert.rejects(
      countTar(ReadableStream.from([new TextEncoder().encode("hello ".repeat(200))])),
      /not a readable tar stream/,
    );
  });
});

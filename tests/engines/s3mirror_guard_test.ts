import assert from "node:assert/strict";
import { massDelete } from "../../src/engines/s3mirror/guard.ts";
import { planLocal } from "../../src/engines/s3mirror/local_names.ts";
import { versionKey, versionSha } from "../../src/engines/s3mirror/versions.ts";

const keys = (n: number) => new Set(Array.from({ length: n }, (_, i) => `k${i}`));

Deno.test("mass-delete guard: every count of 100 against every limit; exactly the limit passes", () => {
  const previous = keys(100);
  for (let gone = 0; gone <= 100; gone++) {
    const listed = new Set([...previous].slice(gone));
    for (const limit of [0, 1, 49, 50, 51, 99, 100]) {
      const d = massDelete(previous, listed, limit, false);
      assert.equal(d.deleted, gone);
      assert.equal(d.previous, 100);
      assert.equal(d.refused, limit < 100 && gone > limit, `${gone} gone, limit ${limit}`);
      assert.equal(massDelete(previous, listed, limit, true).refused, false, "force passes");
    }
  }
});

Deno.test("mass-delete guard: 51% fires and 49% does not at the default 50; a first run never fires", () => {
  assert.equal(massDelete(keys(100), new Set([...keys(100)].slice(51)), 50, false).refused, true);
  assert.equal(massDelete(keys(100), new Set([...keys(100)].slice(49)), 50, false).refused, false);
  assert.equal(massDelete(keys(3), new Set(["k0"]), 50, false).refused, true, "2 of 3 is 66%");
  assert.equal(massDelete(keys(2), new Set(["k0"]), 50, false).refused, false, "1 of 2 is 50%");
  assert.equal(massDelete(new Set(), new Set(), 0, false).refused, false);
  assert.equal(massDelete(keys(10), new Set(["new"]), 50, false).deleted, 10);
});

Deno.test("version store names: fs inside the client's area under %versions, S3 beside mirrors-escaped", () => {
  const h = "ab" + "0".repeat(62);
  assert.equal(versionKey("fs", "assets", h), `mirrors/assets/%versions/ab/${h}`);
  assert.equal(versionKey("s3", "assets", h), `mirrors-versions/assets/ab/${h}`);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/ab/${h}`), h);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/cd/${h}`), null);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/ab/${h}.tmp`), null);
  assert.equal(versionSha("s3", "other", `mirrors-versions/assets/ab/${h}`), null);
  assert.throws(() => versionKey("fs", "assets", "AB" + "0".repeat(62)), /Not a sha256/);
  assert.throws(() => versionKey("fs", "assets", "../x"), /Not a sha256/);
});

Deno.test("local restore names: a key is its own relative path, or named with the reason it has none", () => {
  const plan = planLocal([
    { key: "photos/2024/1.jpg", size: 3 },
    { key: "folder/", size: 0 },
    { key: "marker-with-bytes/", size: 4 },
    { key: "a/../b", size: 1 },
    { key: "a/./b", size: 1 },
    { key: "a//b", size: 1 },
    { key: "/lead", size: 1 },
    { key: "nul\0", size: 1 },
    { key: "long/" + "z".repeat(256), size: 1 },
    { key: "ok/" + "é".repeat(127), size: 1 },
    { key: "x", size: 1 },
    { key: "x/y", size: 1 },
  ]);
  assert.deepEqual(plan.files, [
    { key: "photos/2024/1.jpg", path: "photos/2024/1.jpg" },
    { key: "ok/" + "é".repeat(127), path: "ok/" + "é".repeat(127) },
    { key: "x/y", path: "x/y" },
  ]);
  assert.deepEqual(plan.dirs, ["folder"]);
  assert.deepEqual(plan.unplaceable, [
    {
      key: "marker-with-bytes/",
      reason: "the key has an empty segment (a leading, doubled or trailing '/')",
    },
    { key: "a/../b", reason: "the key has a '..' segment" },
    { key: "a/./b", reason: "the key has a '.' segment" },
    { key: "a//b", reason: "the key has an empty segment (a leading, doubled or trailing '/')" },
    { key: "/lead", reason: "the key has an empty segment (a leading, doubled or trailing '/')" },
    { key: "nul\0", reason: "the key holds a NUL byte" },
    { key: "long/" + "z".repeat(256), reason: "a segment is over 255 bytes (NAME_MAX)" },
    { key: "x", reason: "other objects need 'x' as a directory" },
  ]);
});

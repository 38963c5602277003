import assert from "node:assert/strict";
import { assertSafeKey } from "../../src/repository/paths.ts";
import { mirrorKey, parseS3Target } from "../../src/engines/s3mirror/keys.ts";

Deno.test("mirror keys: ordinary keys keep their shape under mirrors/<client>/", () => {
  assert.equal(
    mirrorKey("assets", "briefs/2026/a b+c%d ü.pdf"),
    "mirrors/assets/briefs/2026/a b+c%d ü.pdf",
  );
  assert.equal(mirrorKey("assets", "top.txt"), "mirrors/assets/top.txt");
});

Deno.test("mirror keys: escapes are refused", () => {
  for (const k of ["../x", "a/../../etc/passwd", "./a", "/abs", "a\0b", "a\\b", ""]) {
    assert.equal(mirrorKey("c", k), null, k);
  }
});

Deno.test("mirror keys: what a filesystem cannot hold is rewritten, deterministically and safely", () => {
  const long = "n".repeat(400);
  const stored = mirrorKey("c", `dir/${long}`)!;
  assert.ok(stored.split("/").every((s) => new TextEncoder().encode(s).length <= 255));
  assert.equal(stored, mirrorKey("c", `dir/${long}`), "stable across runs");
  assert.notEqual(stored, mirrorKey("c", `dir/${long}x`), "distinct names stay distinct");
  assert.equal(mirrorKey("c", "folder/"), "mirrors/c/folder/~folder-marker");
  assert.equal(mirrorKey("c", "a//b"), "mirrors/c/a/~empty/b");
  assert.notEqual(
    mirrorKey("c", "~folder-marker"),
    mirrorKey("c", "x/")!.slice("mirrors/c/x/".length),
  );
  const unicodeLong = "ü".repeat(150);
  const u = mirrorKey("c", unicodeLong)!;
  assert.ok(!u.includes("\uFFFD"), "never cuts a character in half");
  for (const k of ["a b", "x/" + long, "folder/", "a//b", unicodeLong]) {
    assertSafeKey(mirrorKey("c", k)!);
  }
});

Deno.test("restore targets: s3://BUCKET/PREFIX", () => {
  assert.deepEqual(parseS3Target("s3://restore-bucket/some/prefix/"), {
    bucket: "restore-bucket",
    prefix: "some/prefix/",
  });
  assert.deepEqual(parseS3Target("s3://abc"), { bucket: "abc", prefix: "" });
  for (const bad of ["s3://ab/x", "http://bucket/x", "s3://Bad_Bucket/x", "s3://bucket/../x"]) {
    assert.equal(parseS3Target(bad), null, bad);
  }
});

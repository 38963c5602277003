import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { assertSafeKey } from "../../src/repository/paths.ts";
import {
  FS_PATH_BUDGET,
  fsObjectPath,
  fsPathKey,
  objectKeyProblem,
  PIECE_BYTES,
  S3_RAW_BUDGET,
  s3KeepsKeyAsIs,
  storedObjectKey,
} from "../../src/engines/s3mirror/object_names.ts";

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** Every directory a path needs (its proper prefixes), and the path itself as a file. */
function dirsOf(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** The properties every stored path must have, for one key. */
function checkOne(key: string): string {
  const path = fsObjectPath(key);
  assertSafeKey(`mirrors/c/${path}`);
  for (const part of path.split("/")) {
    assert.ok(bytes(part) >= 1 && bytes(part) <= 255, `component of ${bytes(part)} bytes`);
    assert.ok(part !== "." && part !== "..");
  }
  assert.ok(bytes(path) <= FS_PATH_BUDGET);
  assert.equal(path, fsObjectPath(key), "deterministic");
  if (!path.startsWith("%long-keys/")) assert.equal(fsPathKey(path), key, "round trip");
  else assert.equal(path, `%long-keys/${sha(key)}`);
  return path;
}

/** Distinct keys get distinct files, and no file is a directory another key needs. */
function checkDisjoint(keys: string[]): void {
  const files = new Map<string, string>();
  const dirs = new Set<string>();
  for (const key of new Set(keys)) {
    const path = checkOne(key);
    assert.ok(!files.has(path), `${JSON.stringify(key)} and ${files.get(path)} share ${path}`);
    files.set(path, JSON.stringify(key));
    for (const d of dirsOf(path)) dirs.add(d);
  }
  for (const [path, key] of files) assert.ok(!dirs.has(path), `${key}'s file ${path} is a dir`);
}

Deno.test("object names: each case of issue 17 gets its exact path", () => {
  const cases: Array<[string, string]> = [
    ["photos", "photos"],
    ["photos/1.jpg", "photos%2F/1.jpg"],
    ["photos/", "photos%2F/%empty"],
    ["briefs/2026/a b+c ü.pdf", "briefs%2F/2026%2F/a b+c ü.pdf"],
    ["a//b", "a%2F/%2F/b"],
    ["/lead", "%2F/lead"],
    ["/", "%2F/%empty"],
    [".", "%2E"],
    ["..", "%2E%2E"],
    ["a/./b", "a%2F/.%2F/b"],
    ["a/../b", "a%2F/..%2F/b"],
    ["x/..", "x%2F/%2E%2E"],
    ["100% done.txt", "100%25 done.txt"],
    ["back\\slash", "back%5Cslash"],
    ["nul\0and\nnewline\x7f", "nul%00and%0Anewline%7F"],
    ["%empty", "%25empty"],
    ["%long-keys/x", "%25long-keys%2F/x"],
    ["a%2F/b", "a%252F%2F/b"],
    ["~tilde.txt", "~tilde.txt"],
  ];
  for (const [key, path] of cases) {
    assert.equal(fsObjectPath(key), path, JSON.stringify(key));
    checkOne(key);
  }
  checkDisjoint(cases.map(([k]) => k));
});

Deno.test("object names: segments over 255 bytes continue in %+ directories, cut between characters", () => {
  const long = "n".repeat(600);
  assert.equal(
    fsObjectPath(`dir/${long}.txt`),
    `dir%2F/${"n".repeat(240)}%+/${"n".repeat(240)}%+/${"n".repeat(120)}.txt`,
  );
  assert.equal(
    fsObjectPath(`${long}/x`),
    `${"n".repeat(240)}%+/${"n".repeat(240)}%+/${"n".repeat(120)}%2F/x`,
  );
  // A 4-byte character or a %XX is never cut: pieces end short instead.
  const emoji = "😀".repeat(100); // 400 bytes
  const parts = fsObjectPath(emoji).split("/");
  assert.deepEqual(parts.map(bytes), [240 + 2, 160]);
  assert.equal(fsPathKey(fsObjectPath(emoji)), emoji);
  const percent = "a" + "%".repeat(100); // 301 bytes escaped
  const cut = fsObjectPath(percent).split("/");
  assert.equal(cut[0], "a" + "%25".repeat(79) + "%+");
  assert.equal(fsPathKey(fsObjectPath(percent)), percent);
  // A piece that is exactly "." or ".." at the end of a long last segment.
  const dots = "d".repeat(PIECE_BYTES) + "..";
  assert.equal(fsObjectPath(dots), `${"d".repeat(240)}%+/%2E%2E`);
  checkDisjoint([
    long,
    `${long}/x`,
    emoji,
    percent,
    dots,
    "d".repeat(240),
    `${"d".repeat(240)}/..`,
  ]);
});

Deno.test("object names: a key whose path would pass the budget is stored by its sha256", () => {
  const slashes = "/".repeat(1023) + "x"; // 1,024 bytes, 4,093 once encoded
  assert.equal(fsObjectPath(slashes), `%long-keys/${sha(slashes)}`);
  const percents = "%/".repeat(511) + "x"; // 7 bytes per pair encoded
  assert.equal(fsObjectPath(percents), `%long-keys/${sha(percents)}`);
  const fits = "a/".repeat(511) + "x"; // 5 bytes per pair encoded: 2,556
  assert.equal(fsPathKey(fsObjectPath(fits)), fits);
  assert.equal(fsPathKey(`%long-keys/${sha(slashes)}`), null, "the listing names it");
  checkDisjoint([slashes, percents, fits, "%long-keys", "%long-keys/" + sha(slashes)]);
});

Deno.test("object names: keys that are prefixes of others, in any order, never share a name with a directory", () => {
  checkDisjoint([
    "photos",
    "photos/",
    "photos/1.jpg",
    "photos//1.jpg",
    "photos/1.jpg/",
    "photos/1.jpg/thumb",
    "photos%2F",
    "photos%2F/1.jpg",
    "photos%+",
    "photos%+/x",
    "p",
    "p/",
    "p//",
    "//",
    "/",
    "",
  ].filter((k) => k !== ""));
});

Deno.test("object names: round trip, disjointness and limits over 10,000 random keys", () => {
  const alphabet = [
    "a",
    "b",
    "/",
    "/",
    "/",
    ".",
    "..",
    "%",
    "%2F",
    "%+",
    "2F",
    "~",
    "\\",
    "\0",
    "\n",
    "ü",
    "😀",
    " ",
    "empty",
    "%empty",
    "%long-keys",
    "n".repeat(130),
    "😀".repeat(40),
    "%".repeat(45),
  ];
  // mulberry32: a seeded generator, so a failure names a key that can be run again.
  let seed = 17;
  const random = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296 * n) | 0;
  };
  const keys: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    let key = "";
    const length = 1 + random(i % 50 === 0 ? 200 : i % 10 === 0 ? 40 : 8);
    for (let j = 0; j < length; j++) key += alphabet[random(alphabet.length)];
    keys.push(key);
  }
  checkDisjoint(keys);
  const continued = keys.filter((k) => fsObjectPath(k).includes("%+/")).length;
  const hashed = keys.filter((k) => fsObjectPath(k).startsWith("%long-keys/")).length;
  assert.ok(continued > 300 && hashed > 20, `${continued} continued, ${hashed} hashed`);
});

Deno.test("object names: what is not a path of ours reads back as null", () => {
  for (
    const bad of [
      "photos%2F", // a directory, not a file
      "a%+", // a piece with nothing after it
      "%2E%2F/x", // "." spelled the long way
      "a%2f/b", // lower-case hex
      "50%", // a bare %
      "%empty%2F/x",
      "x/%empty/y",
      "a/b", // a plain directory: not a name of ours
      ".",
      "..",
      "%C3%BC", // only control bytes, %, and \ are escaped
    ]
  ) assert.equal(fsPathKey(bad), null, bad);
});

Deno.test("object names: invalid keys are refused with a reason", () => {
  assert.equal(objectKeyProblem(""), "the key is empty");
  assert.match(objectKeyProblem("a\uD800b")!, /lone surrogate/);
  assert.throws(() => fsObjectPath("a\uDC00"), /INVALID_KEY|lone surrogate/);
  assert.equal(objectKeyProblem("photos/1.jpg"), null);
});

Deno.test("object names: an S3 repository keeps keys as they are unless no request can address them", () => {
  assert.equal(storedObjectKey("s3", "c", "photos"), "mirrors/c/photos");
  assert.equal(storedObjectKey("s3", "c", "photos/1.jpg"), "mirrors/c/photos/1.jpg");
  assert.equal(storedObjectKey("s3", "c", "~tilde"), "mirrors/c/~tilde");
  assert.equal(storedObjectKey("s3", "c", "a/../b"), "mirrors-escaped/c/a%2F/..%2F/b");
  assert.equal(storedObjectKey("s3", "c", "a//b"), "mirrors-escaped/c/a%2F/%2F/b");
  assert.equal(storedObjectKey("s3", "c", "folder/"), "mirrors-escaped/c/folder%2F/%empty");
  assert.equal(storedObjectKey("s3", "c", "/lead"), "mirrors-escaped/c/%2F/lead");
  const long = "k".repeat(S3_RAW_BUDGET + 1);
  assert.equal(s3KeepsKeyAsIs(long), false);
  assert.equal(s3KeepsKeyAsIs("k".repeat(S3_RAW_BUDGET)), true);
  assert.equal(storedObjectKey("s3", "c", long), `mirrors-escaped/c/%long-keys/${sha(long)}`);
  assert.equal(storedObjectKey("fs", "c", "photos/1.jpg"), "mirrors/c/photos%2F/1.jpg");
  for (const k of ["a/../b", "a//b", "folder/", "/lead", long, "x\\y", "n\0"]) {
    assertSafeKey(storedObjectKey("s3", "c", k));
    assert.ok(bytes(storedObjectKey("s3", "c", k)) <= 1024 - 64);
  }
});

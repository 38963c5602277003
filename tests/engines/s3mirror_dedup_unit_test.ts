/** The dedup bookkeeping of s3 mirrors (src/engines/s3mirror/dedup.ts): pure logic. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ContentIndex, contentKey, holdsFile } from "../../src/engines/s3mirror/dedup.ts";

const SHA = "a".repeat(64);
const R1 = "age1aaaa";
const R2 = "age1bbbb";

Deno.test("contentKey: plain, encrypted and encrypted for others are three contents; recipient order does not count", () => {
  const plain = contentKey(SHA, []);
  const one = contentKey(SHA, [{ name: "age", recipients: [R1] }]);
  const both = contentKey(SHA, [{ name: "age", recipients: [R1, R2] }]);
  assert.equal(new Set([plain, one, both]).size, 3);
  assert.equal(contentKey(SHA, [{ name: "age", recipients: [R2, R1] }]), both);
  assert.equal(contentKey(SHA, [{ name: "age", recipients: [R1, R1] }]), one);
  assert.notEqual(contentKey("b".repeat(64), []), plain);
  assert.notEqual(
    contentKey(SHA, [{ name: "zstd", level: 3 }]),
    contentKey(SHA, [{ name: "zstd", level: 4 }]),
  );
});

Deno.test("ContentIndex: newest first, each key once, at most four, never the key being linked; drop forgets", () => {
  const index = new ContentIndex();
  const c = contentKey(SHA, []);
  const file = (key: string) => ({ key, size: 1, sha256: SHA });
  assert.deepEqual(index.candidates(c, "x"), []);
  for (const k of ["a", "b", "c", "d", "e"]) index.add(c, file(k));
  assert.deepEqual(index.candidates(c, "x").map((f) => f.key), ["e", "d", "c", "b"]);
  index.add(c, file("c"));
  assert.deepEqual(index.candidates(c, "x").map((f) => f.key), ["c", "e", "d", "b"]);
  assert.deepEqual(index.candidates(c, "e").map((f) => f.key), ["c", "d", "b"]);
  index.drop(c, "e");
  assert.deepEqual(index.candidates(c, "x").map((f) => f.key), ["c", "d", "b"]);
  for (const k of ["c", "d", "b"]) index.drop(c, k);
  assert.deepEqual(index.candidates(c, "x"), []);
  // Another content is apart.
  index.add(contentKey(SHA, [{ name: "age", recipients: [R1] }]), file("enc"));
  assert.deepEqual(index.candidates(c, "x"), []);
});

Deno.test("holdsFile: exactly the size and sha256, longer stops early, shorter or other bytes are no", async () => {
  const data = new TextEncoder().encode("stored file bytes");
  const want = { size: data.length, sha256: createHash("sha256").update(data).digest("hex") };
  const stream = (...parts: Uint8Array[]) => ReadableStream.from(parts);
  assert.equal(await holdsFile(stream(data.subarray(0, 5), data.subarray(5)), want), true);
  assert.equal(await holdsFile(stream(data.subarray(0, 5)), want), false);
  let cancelled = false;
  const longer = new ReadableStream<Uint8Array>({
    start(ctl) {
      ctl.enqueue(data);
      ctl.enqueue(new Uint8Array([1]));
    },
    cancel() {
      cancelled = true;
    },
  });
  assert.equal(await holdsFile(longer, want), false);
  assert.ok(cancelled, "a longer file is not read to its end");
  const other = data.slice();
  other[0] ^= 1;
  assert.equal(await holdsFile(stream(other), want), false);
});

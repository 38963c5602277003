/** How a mirrored copy is stored and read back (src/engines/s3mirror/stored_copy.ts). */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { copyTransforms, encodeCopy, openCopy } from "../../src/engines/s3mirror/stored_copy.ts";
import { isCairnError } from "../../src/errors.ts";
import { randomBytes } from "../helpers/tmp.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const bytesOf = async (s: ReadableStream<Uint8Array>) =>
  new Uint8Array(await new Response(s).arrayBuffer());

async function stored(plain: Uint8Array, recipients: string[]) {
  const encoded = await encodeCopy(ReadableStream.from([plain]), copyTransforms(recipients));
  const bytes = await bytesOf(encoded.stored);
  return { bytes, plain: encoded.plain };
}

Deno.test("stored copies: plain without recipients, an age file with them, read back by what the copy is", async () => {
  const identity = await generateIdentity();
  const other = await generateIdentity();
  const recipient = await identityToRecipient(identity);
  const object = randomBytes(150_000);
  const listed = { size: object.length, sha256: sha(object) };

  assert.deepEqual(copyTransforms([]), []);
  const plain = await stored(object, []);
  assert.equal(plain.plain, null, "the repository's own hash is the plain one");
  assert.deepEqual(plain.bytes, object);

  const enc = await stored(object, [recipient]);
  assert.deepEqual(enc.plain!(), listed);
  // 168-byte header, 16-byte nonce, three 64 KiB chunks each with a 16-byte tag.
  assert.equal(enc.bytes.length, 150_000 + 168 + 16 + 3 * 16);
  const open = (bytes: Uint8Array, ids: string[]) =>
    openCopy(() => Promise.resolve(ReadableStream.from([bytes])), "k", bytes.length, listed, ids);

  const a = await open(plain.bytes, []);
  assert.ok("stream" in a);
  assert.deepEqual(await bytesOf(a.stream), object);
  const b = await open(enc.bytes, [identity]);
  assert.ok("stream" in b);
  assert.deepEqual(await bytesOf(b.stream), object);

  // Reasons, not failures: another copy may hold the bytes.
  assert.deepEqual(await open(enc.bytes, []), {
    reason:
      "k: encrypted (age), and this host has no age identity (repository.encryption.identity_file)",
  });
  const wrong = await open(enc.bytes, [other]);
  assert.ok("reason" in wrong && /^k: no configured age identity opens it/.test(wrong.reason));
  const larger = new Uint8Array(object.length + 500);
  assert.deepEqual(await open(larger, [identity]), {
    reason: `k: size ${object.length + 500}, listing says ${object.length}`,
  });
  assert.deepEqual(await open(object.subarray(1), [identity]), {
    reason: `k: size ${object.length - 1}, listing says ${object.length}`,
  });

  // A damaged or cut age file, and plain bytes that differ: CHECKSUM_MISMATCH at the end.
  const flipped = enc.bytes.slice();
  flipped[100_000] ^= 1;
  const cut = enc.bytes.subarray(0, enc.bytes.length - 1);
  const samePlainSize = object.slice();
  samePlainSize[7] ^= 1;
  for (
    const [name, bytes] of [["flipped", flipped], ["cut", cut], ["plain", samePlainSize]] as const
  ) {
    const opened = await openCopy(
      () => Promise.resolve(ReadableStream.from([bytes])),
      "k",
      bytes.length,
      listed,
      [identity],
    );
    assert.ok("stream" in opened, name);
    await assert.rejects(
      () => bytesOf(opened.stream),
      (e: unknown) => isCairnError(e, "CHECKSUM_MISMATCH"),
      name,
    );
  }
});

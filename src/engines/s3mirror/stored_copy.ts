import { createHash } from "node:crypto";
import { Decrypter } from "age-encryption";
import { CairnError } from "../../errors.ts";
import { verifyingStream } from "../../io/hashing.ts";
import { encode } from "../../pipeline/codec.ts";
import type { Transform } from "../../pipeline/transforms.ts";

type Bytes = ReadableStream<Uint8Array>;

/**
 * How a mirrored object is stored: its plain bytes, or with recipients an age file of
 * them (age-encryption.org/v1, the artifacts' own encryption) at the same key, so
 * `age -d -i key.txt` of any copy gives the object back. Never compressed: with no
 * encryption the newest state stays the objects themselves, which `aws s3 sync` or
 * `mc mirror` of mirrors/<client>/ gives back without cairn (issue 21).
 */
export function copyTransforms(recipients: string[]): Transform[] {
  return recipients.length ? [{ name: "age", recipients }] : [];
}

/**
 * `body` as it is to be stored, and the plain bytes' size and sha256 once it has been
 * read to its end (the sha256 stays each object's identity: listing, verify, dedup);
 * `plain` is null when nothing is transformed (the stored bytes' own are the plain's).
 */
export async function encodeCopy(
  body: Bytes,
  transforms: Transform[],
): Promise<{ stored: Bytes; plain: (() => { size: number; sha256: string }) | null }> {
  // With none, the repository's own hash of what it stores is the plain one.
  if (!transforms.length) return { stored: body, plain: null };
  const hash = createHash("sha256");
  let size = 0;
  let digest: string | null = null;
  const counted = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        size += chunk.byteLength;
        controller.enqueue(chunk);
      },
      flush() {
        digest = hash.digest("hex");
      },
    }),
  );
  let stored = counted;
  for (const t of transforms) stored = await encode(stored, t);
  return {
    stored,
    plain: () => {
      if (digest === null) throw new Error("the copy was not read to its end");
      return { size, sha256: digest };
    },
  };
}

/** The first line of every age file (age-encryption.org/v1). */
const AGE_MAGIC = new TextEncoder().encode("age-encryption.org/v1\n");

/** The stream's first `n` bytes (fewer at its end) and the whole stream again. */
async function peek(body: Bytes, n: number): Promise<{ head: Uint8Array; body: Bytes }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    chunks.push(r.value);
    have += r.value.byteLength;
  }
  const head = new Uint8Array(have);
  let at = 0;
  for (const c of chunks) {
    head.set(c, at);
    at += c.byteLength;
  }
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      if (done) controller.close();
    },
    async pull(controller) {
      const r = await reader.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { head: head.subarray(0, Math.min(n, have)), body: rest };
}

/** Errors of `body` as CHECKSUM_MISMATCH: damage, so the caller tries another copy. */
function damagedAs(body: Bytes): Bytes {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = await reader.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      } catch (error) {
        controller.error(
          error instanceof CairnError ? error : new CairnError(
            "CHECKSUM_MISMATCH",
            `the copy cannot be decrypted to the end (damaged): ${(error as Error).message}`,
            { cause: error },
          ),
        );
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

export type OpenedCopy =
  | { stream: Bytes }
  | { reason: string };

/**
 * One stored copy of a listed object (a current copy or a kept version) as the
 * object's plain bytes, checked against the listing's size and sha256 as they come:
 * the stream errors with CHECKSUM_MISMATCH at its end, holding back its last chunk,
 * should anything differ. How the copy is stored is told by the copy itself, not the
 * listing (a version is kept once for every run and key that has its bytes, whatever
 * each stored): a copy of the listed size is the plain bytes (an age file is always
 * larger than what it holds); a larger one that is an age file is decrypted with
 * `identities`. Anything else, an encrypted copy on a host with no identity included,
 * is a reason, not a stream.
 */
export async function openCopy(
  get: () => Promise<Bytes>,
  key: string,
  storedSize: number,
  listed: { size: number; sha256: string },
  identities: string[],
): Promise<OpenedCopy> {
  const check = () => verifyingStream({ sha256: listed.sha256, size: listed.size, key });
  if (storedSize === listed.size) return { stream: (await get()).pipeThrough(check()) };
  if (storedSize < listed.size + AGE_MAGIC.length) {
    return { reason: `${key}: size ${storedSize}, listing says ${listed.size}` };
  }
  const { head, body } = await peek(await get(), AGE_MAGIC.length);
  if (!head.every((b, i) => b === AGE_MAGIC[i]) || head.length < AGE_MAGIC.length) {
    body.cancel().catch(() => {});
    return { reason: `${key}: size ${storedSize}, listing says ${listed.size}` };
  }
  if (identities.length === 0) {
    // A reason, not a failure: another copy (a plain version kept before encryption
    // was switched on) may hold the bytes. A run recorded as encrypted was refused
    // up front (requireIdentityForCopies in engine.ts).
    body.cancel().catch(() => {});
    return {
      reason:
        `${key}: encrypted (age), and this host has no age identity (repository.encryption.identity_file)`,
    };
  }
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  let plain: Bytes;
  try {
    plain = await d.decrypt(body) as Bytes;
  } catch (error) {
    body.cancel().catch(() => {});
    return {
      reason: `${key}: no configured age identity opens it, or its header is damaged (${
        (error as Error).message
      })`,
    };
  }
  return { stream: damagedAs(plain).pipeThrough(check()) };
}

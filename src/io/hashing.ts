import { createHash } from "node:crypto";
import { CairnError } from "../errors.ts";
import { readBlocks } from "./file_chunks.ts";

export interface ContentHasher {
  update(chunk: Uint8Array): void;
  result(): { size: number; sha256: string };
}

/**
 * The sha256 and size of bytes handed over one chunk at a time, by the loop that
 * stores them: an artifact is hashed while it is written instead of being read
 * twice. Not a TransformStream: a stage costs about 30 us a chunk, 0.4 s of CPU over
 * a 5,000-object mirror.
 */
export function contentHasher(onProgress?: (bytes: number) => void): ContentHasher {
  const hash = createHash("sha256");
  let size = 0;
  let digest: string | null = null;
  return {
    update(chunk) {
      hash.update(chunk);
      size += chunk.byteLength;
      onProgress?.(size);
    },
    result() {
      digest ??= hash.digest("hex");
      return { size, sha256: digest };
    },
  };
}

/**
 * Passes bytes through and errors at the very end when their sha256 or size differ
 * from what the manifest promised. The last chunk is held back until the check
 * passes, so a consumer (tar, pg_restore, a file) never receives a complete copy of
 * a damaged artifact and cannot mistake it for a whole one.
 */
export function verifyingStream(
  expected: Expected,
  onProgress?: (bytes: number) => void,
): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  let size = 0;
  let held: Uint8Array | null = null;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      size += chunk.byteLength;
      onProgress?.(size);
      if (held) controller.enqueue(held);
      held = chunk;
    },
    flush(controller) {
      const actual = hash.digest("hex");
      if (size !== expected.size || actual !== expected.sha256) {
        controller.error(damaged(expected, actual, size));
        return;
      }
      if (held) controller.enqueue(held);
    },
  });
}

function damaged(expected: Expected, actual: string, size: number): CairnError {
  return new CairnError(
    "CHECKSUM_MISMATCH",
    `Artifact ${expected.key} is damaged: sha256 ${actual} (${size} bytes) does not match the manifest's ${expected.sha256} (${expected.size} bytes)`,
  );
}

type Expected = { sha256: string; size: number; key: string };

/**
 * The CHECKSUM_MISMATCH error (the same sentence as verifyingStream's) when the bytes
 * hashed elsewhere (a worker) differ from what the manifest promised, else null.
 */
export function digestMismatch(
  expected: Expected,
  actual: { size: number; sha256: string },
): CairnError | null {
  return actual.size === expected.size && actual.sha256 === expected.sha256
    ? null
    : damaged(expected, actual.sha256, actual.size);
}

/**
 * Checks a local file against the manifest in one pass of MiB reads into one reused
 * buffer: no stream, no chunk objects (twice as fast as draining a verifying stream).
 */
export async function checkFile(
  path: string,
  expected: Expected,
  options: { onProgress?: (bytes: number) => void; signal?: AbortSignal } = {},
): Promise<void> {
  const hash = createHash("sha256");
  let done = 0;
  const size = await readBlocks(path, (block) => {
    hash.update(block);
    options.onProgress?.(done += block.length);
  }, { signal: options.signal });
  const actual = hash.digest("hex");
  if (size !== expected.size || actual !== expected.sha256) throw damaged(expected, actual, size);
}

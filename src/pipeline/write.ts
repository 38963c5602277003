import { createHash } from "node:crypto";
import type { Repository } from "../repository/repository.ts";
import { putIfAbsent } from "../repository/capabilities.ts";
import { encodeAll } from "./codec.ts";
import { codecPass, OFF_THREAD_MIN_BYTES } from "./offthread.ts";
import { isEncrypted, type Transform } from "./transforms.ts";

export interface StoredArtifact {
  /** The bytes as stored (after every transform). */
  stored: { size: number; sha256: string };
  /** The engine's plain artifact. */
  plain: { size: number; sha256: string };
}

/**
 * Stores an engine's plain artifact under `key`: hashes the plain bytes, applies the
 * transforms in order, and has the repository hash and store the result. Bounded
 * memory: every stage is a stream with backpressure. An unencrypted artifact that
 * reaches OFF_THREAD_MIN_BYTES is compressed and its plain bytes hashed in a worker
 * (offthread.ts), so compression overlaps with the engine's own work (an RDB parse,
 * pg_dump's pipe) instead of adding to it; smaller ones, which would wait longer for
 * a worker to start than for their encoding, and encrypted ones (see below) stay on
 * the main thread.
 * With `ifAbsent`, the artifact never replaces an object at `key` (OBJECT_EXISTS,
 * nothing stored): how a backup publishes (runtime/publish.ts).
 */
export async function writeArtifact(
  repo: Repository,
  key: string,
  body: ReadableStream<Uint8Array>,
  transforms: Transform[],
  options: {
    signal?: AbortSignal;
    onProgress?: (plainBytes: number) => void;
    ifAbsent?: boolean;
  } = {},
): Promise<StoredArtifact> {
  let size = 0;
  const reader = body.getReader();
  // The head is kept until it is clear which side encodes (at most OFF_THREAD_MIN_BYTES).
  const head: Uint8Array[] = [];
  // Encrypted backups stay on the main thread: with age in the worker, a 4 GiB
  // encrypted backup to S3 peaked at 218-237 MiB of RSS against 162 MiB on one thread
  // (the 200 MB goal), and grew with the size (187 MiB at 1 GiB).
  let ended = transforms.length === 0 || isEncrypted(transforms);
  try {
    while (!ended && size < OFF_THREAD_MIN_BYTES) {
      options.signal?.throwIfAborted();
      const next = await reader.read();
      if (next.done) ended = true;
      else {
        head.push(next.value);
        size += next.value.byteLength;
        options.onProgress?.(size);
      }
    }
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
  const offThread = !ended;
  const hash = offThread ? null : createHash("sha256");
  for (const chunk of head) hash?.update(chunk);
  const counted = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = head.shift();
      if (chunk !== undefined) return controller.enqueue(chunk);
      const next = await reader.read();
      if (next.done) return controller.close();
      hash?.update(next.value);
      size += next.value.byteLength;
      options.onProgress?.(size);
      controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  const put = (encoded: ReadableStream<Uint8Array>) =>
    options.ifAbsent
      ? putIfAbsent(repo, key, encoded, { signal: options.signal })
      : repo.put(key, encoded, { signal: options.signal });
  if (!offThread) {
    const stored = await put(await encodeAll(counted, transforms));
    return { stored, plain: { size, sha256: hash!.digest("hex") } };
  }
  const pass = codecPass(counted, "encode", transforms);
  let stored;
  try {
    stored = await put(pass.output);
  } catch (error) {
    pass.cancel(error); // a repository that failed without cancelling its body
    throw error;
  }
  const result = await pass.result;
  return { stored, plain: result.input };
}

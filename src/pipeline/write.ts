import { createHash } from "node:crypto";
import type { Repository } from "../repository/repository.ts";
import { encodeAll } from "./codec.ts";
import type { Transform } from "./transforms.ts";

export interface StoredArtifact {
  /** The bytes as stored (after every transform). */
  stored: { size: number; sha256: string };
  /** The engine's plain artifact. */
  plain: { size: number; sha256: string };
}

/**
 * Stores an engine's plain artifact under `key`: hashes the plain bytes, applies the
 * transforms in order, and has the repository hash and store the result. Bounded
 * memory: every stage is a stream with backpressure.
 */
export async function writeArtifact(
  repo: Repository,
  key: string,
  body: ReadableStream<Uint8Array>,
  transforms: Transform[],
  options: { signal?: AbortSignal; onProgress?: (plainBytes: number) => void } = {},
): Promise<StoredArtifact> {
  const hash = createHash("sha256");
  let size = 0;
  const counted = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        size += chunk.byteLength;
        options.onProgress?.(size);
        controller.enqueue(chunk);
      },
    }),
  );
  const stored = await repo.put(key, await encodeAll(counted, transforms), {
    signal: options.signal,
  });
  return { stored, plain: { size, sha256: hash.digest("hex") } };
}

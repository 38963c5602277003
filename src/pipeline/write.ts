import { createHash } from "node:crypto";
import type { Repository } from "../repository/repository.ts";
import { putIfAbsent } from "../repository/capabilities.ts";
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
 * memory: every stage is a stream with backpressure. With `ifAbsent`, the artifact
 * never replaces an object at `key` (OBJECT_EXISTS, nothing stored): how a backup
 * publishes (runtime/publish.ts).
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
  const encoded = await encodeAll(counted, transforms);
  const put = { signal: options.signal };
  const stored = options.ifAbsent
    ? await putIfAbsent(repo, key, encoded, put)
    : await repo.put(key, encoded, put);
  return { stored, plain: { size, sha256: hash.digest("hex") } };
}

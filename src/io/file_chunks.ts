/**
 * A file (from `start`, for at most `length` bytes) as a stream of fresh buffers of
 * `chunk` bytes. Fresh, not one reused: a consumer may keep views of a chunk. Buffers
 * fit what is left of the file, so a 2 KiB read does not cost a whole chunk.
 */
export async function fileChunks(
  file: Deno.FsFile,
  /** `chunk` may change between reads: a function is asked before each one. */
  options: { start?: number; length?: number; chunk: number | (() => number) },
): Promise<ReadableStream<Uint8Array>> {
  const start = options.start ?? 0;
  if (start > 0) await file.seek(start, Deno.SeekMode.Start);
  let left = options.length ?? Infinity;
  let expected = (await file.stat()).size - start;
  const done = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    file.close();
    controller.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left <= 0) return done(controller);
      const chunk = typeof options.chunk === "function" ? options.chunk() : options.chunk;
      const buf = new Uint8Array(Math.min(chunk, left, Math.max(expected + 1, 4096)));
      const n = await file.read(buf);
      if (n === null) return done(controller);
      left -= n;
      expected -= n;
      controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  });
}

const BLOCK = 1024 * 1024;

/**
 * Reads bytes [start, end) of a file in MiB blocks into one reused buffer, handing
 * each block to `onBlock` before the next read: no stream and no chunk objects, which
 * cost as much as hashing the bytes. Returns how many bytes were read (fewer than
 * asked when the file is shorter).
 */
export async function readBlocks(
  path: string,
  onBlock: (block: Uint8Array) => void,
  options: { start?: number; end?: number; signal?: AbortSignal } = {},
): Promise<number> {
  const start = options.start ?? 0, end = options.end ?? Infinity;
  const buf = new Uint8Array(BLOCK);
  using file = await Deno.open(path, { read: true });
  if (start > 0) await file.seek(start, Deno.SeekMode.Start);
  let at = start;
  while (at < end) {
    options.signal?.throwIfAborted();
    const n = await file.read(buf.subarray(0, Math.min(BLOCK, end - at)));
    if (n === null) break;
    onBlock(buf.subarray(0, n));
    at += n;
  }
  return at - start;
}

/**
 * Repacks a byte stream into fresh buffers of exactly `size` bytes (the last one
 * shorter). A pipe read is often a few KiB viewing a 64 KiB buffer: a multipart
 * upload that queues such views keeps every backing buffer alive, three to sixteen
 * times the bytes it holds. Copying into compact buffers bounds what a queued part
 * costs by its own size.
 */
export function packingStream(size: number): TransformStream<Uint8Array, Uint8Array> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`bad pack size ${size}`);
  let buffer = new Uint8Array(size);
  let filled = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(size - filled, chunk.length - offset);
        buffer.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === size) {
          controller.enqueue(buffer);
          buffer = new Uint8Array(size);
          filled = 0;
        }
      }
    },
    flush(controller) {
      if (filled > 0) controller.enqueue(buffer.slice(0, filled));
    },
  });
}

/**
 * Passes a stream through unchanged while feeding a second consumer (a parser)
 * with the same chunks. Unlike ReadableStream.tee(), a slow side consumer slows the
 * source instead of buffering without bound; a side failure fails the main stream.
 */
export function withSideConsumer<T>(
  consume: (side: ReadableStream<Uint8Array>) => Promise<T>,
  window = 16,
): { transform: TransformStream<Uint8Array, Uint8Array>; result: Promise<T> } {
  const side = new TransformStream<Uint8Array, Uint8Array>({}, { highWaterMark: window });
  const writer = side.writable.getWriter();
  const result = consume(side.readable);
  result.catch(() => {});
  let failure: unknown = null;
  result.catch((e) => (failure = e));
  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      if (failure) throw failure;
      await Promise.race([writer.ready, result.then(() => {}, () => {})]);
      if (failure) throw failure;
      writer.write(chunk).catch(() => {});
      controller.enqueue(chunk);
    },
    async flush() {
      await writer.close().catch(() => {});
      await result;
    },
    cancel(reason) {
      writer.abort(reason).catch(() => {});
    },
  });
  return { transform, result };
}

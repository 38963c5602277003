/** Runs `work` over `items` with at most `concurrency` at once; the first failure stops the rest. */
export async function forEachConcurrently<T>(
  items: AsyncIterable<T> | Iterable<T>,
  concurrency: number,
  work: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const iterator =
    (Symbol.asyncIterator in items
      ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
      : (items as Iterable<T>)[Symbol.iterator]()) as AsyncIterator<T> | Iterator<T>;
  let failed: unknown = null;
  let done = false;
  const lane = async () => {
    while (!done && failed === null) {
      signal?.throwIfAborted();
      const next = await iterator.next();
      if (next.done) {
        done = true;
        return;
      }
      try {
        await work(next.value);
      } catch (error) {
        failed ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  if (failed !== null) throw failed;
}

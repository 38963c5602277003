/**
 * Runs `work` over `items` with at most `concurrency` at once. The first failure (of
 * the work, of the items' iterator, or the signal's abort) stops further pulls; the
 * pool settles only after every started `work` has, so a caller's cleanup never runs
 * beside copies still in flight. An iterator left unfinished is closed (`return()`).
 */
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
  let failed = null as { error: unknown } | null;
  let done = false;
  const lane = async () => {
    while (!done && failed === null) {
      try {
        signal?.throwIfAborted();
        const next = await iterator.next();
        if (next.done) {
          done = true;
          return;
        }
        if (failed !== null) return; // another lane failed while this one waited
        await work(next.value);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  if (failed !== null) {
    if (!done) await Promise.resolve(iterator.return?.()).catch(() => {});
    throw failed.error;
  }
}

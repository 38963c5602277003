import {
  BLOCK,
  decodeHeader,
  isZeroBlock,
  paddingFor,
  parsePax,
  type TarHeader,
} from "./tar_format.ts";

/** Reads exact byte counts from a stream of arbitrary chunks. */
class ByteQueue {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n && !this.#done) {
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else if (value.byteLength > 0) {
        this.#chunks.push(value);
        this.#buffered += value.byteLength;
      }
    }
    return this.#buffered >= n;
  }

  /** Exactly n bytes, or null at a clean end of stream. */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n))) {
      if (this.#buffered === 0) return null;
      throw new Error("the archive ends in the middle of an entry (truncated)");
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = this.#chunks[0];
      const take = Math.min(head.byteLength, n - off);
      out.set(head.subarray(0, take), off);
      off += take;
      if (take === head.byteLength) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(take);
    }
    this.#buffered -= n;
    return out;
  }

  /** Up to `max` bytes as they come (no copy of large chunks), for streaming bodies. */
  async readSome(max: number): Promise<Uint8Array> {
    if (!(await this.#fill(1))) {
      throw new Error("the archive ends in the middle of a file (truncated)");
    }
    const head = this.#chunks[0];
    const take = Math.min(head.byteLength, max);
    if (take === head.byteLength) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(take);
    this.#buffered -= take;
    return head.subarray(0, take);
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.readSome(n)).byteLength;
  }

  async drain(): Promise<void> {
    while (!this.#done) {
      const { done } = await this.#reader.read();
      if (done) this.#done = true;
    }
  }

  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason);
  }
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's bytes; consume it (or not) before asking for the next entry. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * Yields the entries of an (uncompressed) tar stream one at a time, never holding
 * a file body in memory. Understands ustar, PAX and GNU long names.
 */
export async function* readTar(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const q = new ByteQueue(stream);
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  try {
    for (;;) {
      const block = await q.readExact(BLOCK);
      if (block === null) return;
      if (isZeroBlock(block)) {
        await q.drain();
        return;
      }
      const { header, typeflag } = decodeHeader(block);
      if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
        const data = (await q.readExact(header.size)) ?? new Uint8Array();
        await q.skip(paddingFor(header.size));
        if (typeflag === "x") pax = { ...pax, ...parsePax(data) };
        else if (typeflag === "L") longName = new TextDecoder().decode(data).replace(/\0+$/, "");
        else if (typeflag === "K") longLink = new TextDecoder().decode(data).replace(/\0+$/, "");
        continue;
      }
      const full: TarHeader = {
        ...header,
        path: pax.path ?? longName ?? header.path,
        linkpath: pax.linkpath ?? longLink ?? header.linkpath,
        size: pax.size !== undefined ? Number(pax.size) : header.size,
        mtime: pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : header.mtime,
      };
      pax = {};
      longName = longLink = null;
      const dataSize = full.type === "file" || full.type === "other" ? full.size : 0;
      let left = dataSize;
      const body = {
        async *[Symbol.asyncIterator]() {
          while (left > 0) {
            const chunk = await q.readSome(Math.min(left, 1 << 20));
            left -= chunk.byteLength;
            yield chunk;
          }
        },
      };
      yield { header: full, body };
      if (left > 0) await q.skip(left);
      await q.skip(paddingFor(dataSize));
    }
  } catch (error) {
    await q.cancel(error).catch(() => {});
    throw error;
  }
}

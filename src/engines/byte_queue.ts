/**
 * Reads exact byte counts from a stream of arbitrary chunks, for streaming parsers
 * (tar, RDB). Every consumed byte passes `onConsume` (checksums) and, while a
 * capture is active, is kept (the raw bytes of one value).
 */
export class ByteQueue {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #done = false;
  #capture: Uint8Array[] | null = null;
  #captured = 0;
  #captureLimit = 0;
  #overflow = false;
  /** Bytes consumed so far. */
  offset = 0;
  onConsume: ((bytes: Uint8Array) => void) | null = null;

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

  #consumed(bytes: Uint8Array): void {
    this.offset += bytes.byteLength;
    this.onConsume?.(bytes);
    if (this.#capture && !this.#overflow) {
      this.#captured += bytes.byteLength;
      if (this.#captured > this.#captureLimit) {
        this.#overflow = true;
        this.#capture = [];
      } else this.#capture.push(bytes.slice());
    }
  }

  /** Exactly n bytes, or null at a clean end of stream. */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n))) {
      if (this.#buffered === 0 && n > 0) return null;
      throw new Error("the stream ends in the middle of a record (truncated)");
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
    this.#consumed(out);
    return out;
  }

  /** Exactly n bytes; end of stream is an error. */
  async need(n: number): Promise<Uint8Array> {
    const out = await this.readExact(n);
    if (out === null) throw new Error("the stream ends early (truncated)");
    return out;
  }

  async u8(): Promise<number> {
    return (await this.need(1))[0];
  }

  /** Up to `max` bytes as they come (no copy of large chunks), for streaming bodies. */
  async readSome(max: number): Promise<Uint8Array> {
    if (!(await this.#fill(1))) {
      throw new Error("the stream ends in the middle of a value (truncated)");
    }
    const head = this.#chunks[0];
    const take = Math.min(head.byteLength, max);
    if (take === head.byteLength) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(take);
    this.#buffered -= take;
    const out = head.subarray(0, take);
    this.#consumed(out);
    return out;
  }

  /** One line ending in \n (a trailing \r is dropped), or null at a clean end of stream. */
  async readLine(maxLength = 64 * 1024): Promise<string | null> {
    for (;;) {
      let seen = 0;
      for (const chunk of this.#chunks) {
        const nl = chunk.indexOf(0x0a);
        if (nl !== -1) {
          const line = await this.need(seen + nl + 1);
          const end = line.length >= 2 && line[line.length - 2] === 0x0d
            ? line.length - 2
            : line.length - 1;
          return new TextDecoder().decode(line.subarray(0, end));
        }
        seen += chunk.byteLength;
      }
      if (seen > maxLength) throw new Error(`a protocol line is longer than ${maxLength} bytes`);
      if (!(await this.#fill(this.#buffered + 1))) {
        if (this.#buffered === 0) return null;
        throw new Error("the stream ends in the middle of a line");
      }
    }
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.readSome(n)).byteLength;
  }

  /** True when nothing is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.#fill(1));
  }

  async drain(): Promise<void> {
    while (!this.#done) {
      const { done } = await this.#reader.read();
      if (done) this.#done = true;
    }
  }

  startCapture(limit: number): void {
    this.#capture = [];
    this.#captured = 0;
    this.#captureLimit = limit;
    this.#overflow = false;
  }

  /** The captured bytes, or null when they outgrew the limit. */
  stopCapture(): Uint8Array[] | null {
    const out = this.#overflow ? null : this.#capture;
    this.#capture = null;
    return out;
  }

  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason);
  }
}

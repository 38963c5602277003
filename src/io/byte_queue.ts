/**
 * Reads exact byte counts from a stream of arbitrary chunks, for streaming parsers
 * (tar, RDB). Every consumed byte passes `onConsume` (checksums) and, while a
 * capture is active, is kept (the raw bytes of one value).
 */
const DECODER = new TextDecoder();

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
  /** Optional single-byte form of onConsume, so u8() allocates nothing. */
  onConsumeByte: ((byte: number) => void) | null = null;

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

  /** `bytes` is ours (a fresh copy): a capture may keep it as is. */
  #consumed(bytes: Uint8Array): void {
    this.offset += bytes.byteLength;
    this.onConsume?.(bytes);
    if (this.#capture && !this.#overflow) this.#keep(bytes);
  }

  /**
   * `bytes` is a view into a buffered chunk. Chunks are never written to again, so a
   * capture keeps the view itself, merged with the previous one when they touch:
   * capturing a value costs a few views, not one copy per byte read.
   */
  #consumedView(bytes: Uint8Array): void {
    if (bytes.byteLength === 1 && this.onConsumeByte) this.onConsumeByte(bytes[0]);
    else this.onConsume?.(bytes);
    if (!this.#capture || this.#overflow) return;
    const last = this.#capture[this.#capture.length - 1];
    if (
      last && last.buffer === bytes.buffer && last.byteOffset + last.byteLength === bytes.byteOffset
    ) {
      this.#captured += bytes.byteLength;
      if (this.#captured > this.#captureLimit) {
        this.#overflow = true;
        this.#capture = [];
      } else {this.#capture[this.#capture.length - 1] = new Uint8Array(
          bytes.buffer,
          last.byteOffset,
          last.byteLength + bytes.byteLength,
        );}
      return;
    }
    this.#keep(bytes);
  }

  #keep(bytes: Uint8Array): void {
    this.#captured += bytes.byteLength;
    if (this.#captured > this.#captureLimit) {
      this.#overflow = true;
      this.#capture = [];
    } else this.#capture!.push(bytes);
  }

  /**
   * Exactly n bytes, or null at a clean end of stream. The result may be a view into
   * a chunk the stream handed over (chunks are never written to again), so treat it
   * as read-only.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill(n))) {
      if (this.#buffered === 0 && n > 0) return null;
      throw new Error("the stream ends in the middle of a record (truncated)");
    }
    const view = this.tryView(n);
    if (view) return view;
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const h = this.#chunks[0];
      const take = Math.min(h.byteLength, n - off);
      out.set(h.subarray(0, take), off);
      off += take;
      if (take === h.byteLength) this.#chunks.shift();
      else this.#chunks[0] = h.subarray(take);
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

  /** Consumes `n` bytes from the head chunk (the caller checked they are there) as a view. */
  #take(n: number): Uint8Array {
    const head = this.#chunks[0];
    const view = head.subarray(0, n);
    if (head.byteLength === n) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    this.#buffered -= n;
    this.offset += n;
    return view;
  }

  /** The next byte if it is already buffered (no await), else -1: parsers' fast path. */
  tryU8(): number {
    if (this.#buffered === 0) return -1;
    const view = this.#take(1);
    if (this.#capture || (this.onConsume && !this.onConsumeByte)) this.#consumedView(view);
    else this.onConsumeByte?.(view[0]);
    return view[0];
  }

  /** The buffered head chunk (read-only), or null: for synchronous scanners. */
  peekHead(): Uint8Array | null {
    return this.#chunks[0] ?? null;
  }

  /** Consumes `n` bytes of the head chunk (the caller scanned them there), as one view. */
  advance(n: number): Uint8Array {
    const head = this.#chunks[0];
    if (!head || head.byteLength < n) throw new RangeError("advance past the head chunk");
    const view = this.#take(n);
    this.#consumedView(view);
    return view;
  }

  /** Consumes `expected` if the head chunk starts with exactly those bytes (no await). */
  tryConsume(expected: Uint8Array): boolean {
    const head = this.#chunks[0];
    if (!head || head.byteLength < expected.length) return false;
    for (let i = 0; i < expected.length; i++) if (head[i] !== expected[i]) return false;
    this.#consumedView(this.#take(expected.length));
    return true;
  }

  /** n bytes if they are already in the head chunk (no await), else null. */
  tryView(n: number): Uint8Array | null {
    const head = this.#chunks[0];
    if (!head || head.byteLength < n) return null;
    const view = this.#take(n);
    this.#consumedView(view);
    return view;
  }

  async u8(): Promise<number> {
    const b = this.tryU8();
    if (b >= 0) return b;
    if (!(await this.#fill(1))) throw new Error("the stream ends early (truncated)");
    return this.tryU8();
  }

  /** Up to `max` bytes as they come (no copy of large chunks), for streaming bodies. */
  async readSome(max: number): Promise<Uint8Array> {
    if (!(await this.#fill(1))) {
      throw new Error("the stream ends in the middle of a value (truncated)");
    }
    const view = this.#take(Math.min(this.#chunks[0].byteLength, max));
    this.#consumedView(view);
    return view;
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
          return DECODER.decode(line.subarray(0, end));
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

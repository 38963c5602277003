import { CairnError } from "../../errors.ts";
import { adler32Combine } from "./adler32.ts";

/**
 * Turns the uncompressed custom-format archive of `pg_dump -Fc -Z0` into the same
 * archive compressed with zlib, the pieces of every data stream deflated on other
 * threads at once. pg_dump compresses on one core, which makes it, not the
 * database or the disk, the bottleneck of a backup; the result here is an archive
 * pg_restore reads like one pg_dump compressed itself.
 *
 * Layout (pg_backup_archiver.c, pg_backup_custom.c; archive versions 1.12 to 1.14,
 * written by pg_dump 9.6 to 15): a header whose compression field we rewrite, the
 * TOC (copied as is: a piped archive carries no data offsets), then data blocks,
 * each a type byte and a dump id followed by length-prefixed chunks ended by a zero
 * length. A TABLE DATA block (type 1) is one stream; a BLOBS block (type 3) is a
 * list of (oid, stream) ended by oid 0. Compressed, each stream is one zlib stream,
 * chunked the same way. Ours is pigz's construction: the header 78 9C, raw deflate
 * pieces each ended by a sync flush (byte-aligned, not final), an empty final
 * block, and the Adler-32 of the whole stream combined from the pieces'.
 */

export interface DeflatedPiece {
  /**
   * `headroom` free bytes, then raw deflate ended by a full flush (byte-aligned,
   * not final).
   */
  bytes: Uint8Array;
  /** Adler-32 of the plain bytes. */
  adler: number;
  /** How many plain bytes. */
  length: number;
  /** The plain bytes' buffer handed back, for the next piece to reuse. */
  plain?: Uint8Array;
}

/** Deflates one piece; takes ownership of `plain`'s buffer. */
export type DeflatePiece = (plain: Uint8Array, headroom: number) => Promise<DeflatedPiece>;

const MAGIC = "PGDMP";
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const ZLIB_HEADER = [0x78, 0x9c];
/** An empty fixed-Huffman block with BFINAL set: what Z_FINISH adds after a sync flush. */
const FINAL_BLOCK = [0x03, 0x00];
const OFFSET_POS_NOT_SET = 1;
const OFFSET_POS_SET = 2;
const MIN_VERSION = 0x010c; // 1.12
const MAX_VERSION = 0x010e; // 1.14

class NeedMore extends Error {}

function archiveError(message: string): CairnError {
  return new CairnError(
    "SOURCE_UNAVAILABLE",
    `pg_dump's archive could not be read: ${message}`,
  );
}

/** Reads the header and TOC from one growing buffer; NeedMore when it ends too soon. */
class HeadReader {
  pos = 0;
  intSize = 4;
  constructor(readonly bytes: Uint8Array, readonly length: number) {}

  byte(): number {
    if (this.pos >= this.length) throw new NeedMore();
    return this.bytes[this.pos++];
  }

  skip(n: number): void {
    if (this.pos + n > this.length) throw new NeedMore();
    this.pos += n;
  }

  int(): number {
    if (this.pos + 1 + this.intSize > this.length) throw new NeedMore();
    const value = decodeInt(this.bytes, this.pos, this.intSize);
    this.pos += 1 + this.intSize;
    return value;
  }

  /** Skips a string; false when it was NULL (length -1). */
  str(): boolean {
    const length = this.int();
    if (length < 0) return false;
    this.skip(length);
    return true;
  }
}

function decodeInt(bytes: Uint8Array, at: number, intSize: number): number {
  let value = 0;
  for (let k = intSize; k >= 1; k--) value = value * 256 + bytes[at + k];
  return bytes[at] ? -value : value;
}

interface Stream {
  started: boolean;
  pieces: Promise<{ adler: number; length: number }>[];
}

const enum State {
  Head,
  BlockType,
  BlockId,
  BlobOid,
  ChunkLength,
  ChunkData,
}

export class ArchiveRecompressor {
  /** What to write, in order: ready bytes, or bytes still being compressed. */
  readonly out: Array<Uint8Array | Promise<Uint8Array>> = [];
  /** Pieces submitted and not yet taken from `out`. */
  pending = 0;

  readonly #deflate: DeflatePiece;
  readonly #level: number;
  readonly #pieceSize: number;
  #state = State.Head;
  #head = new Uint8Array(64 * 1024);
  #headLength = 0;
  /** Where the next unread TOC entry starts in #head, and how many are left. */
  #tocAt = -1;
  #tocLeft = 0;
  #version = 0;
  #intSize = 4;
  #offSize = 8;
  /** An int split across two feeds. */
  #part = new Uint8Array(16);
  #partLength = 0;
  /** The value of the int #int read last. */
  #lastInt = 0;
  #blockType = 0;
  #chunkLeft = 0;
  #stream: Stream | null = null;
  #group: Uint8Array;
  #groupLength = 0;
  #raw: number[] = [];
  #spare: Uint8Array[] = [];

  constructor(deflate: DeflatePiece, options: { level: number; pieceSize?: number }) {
    this.#deflate = deflate;
    this.#level = options.level;
    this.#pieceSize = options.pieceSize ?? 1024 * 1024;
    this.#group = new Uint8Array(this.#pieceSize);
  }

  feed(bytes: Uint8Array): void {
    let i = 0;
    if (this.#state === State.Head) {
      const rest = this.#feedHead(bytes);
      if (rest === null) return;
      bytes = rest;
    }
    while (i < bytes.length) {
      switch (this.#state) {
        case State.BlockType: {
          const type = bytes[i++];
          if (type !== BLK_DATA && type !== BLK_BLOBS) {
            throw archiveError(`unknown data block type ${type}`);
          }
          this.#blockType = type;
          this.#raw.push(type);
          this.#state = State.BlockId;
          break;
        }
        case State.BlockId: {
          const at = this.#int(bytes, i);
          if (at < 0) return;
          i = at;
          this.#state = this.#blockType === BLK_DATA ? State.ChunkLength : State.BlobOid;
          if (this.#blockType === BLK_DATA) this.#startStream();
          break;
        }
        case State.BlobOid: {
          const at = this.#int(bytes, i);
          if (at < 0) return;
          const oid = this.#lastInt;
          i = at;
          if (oid === 0) {
            this.#state = State.BlockType;
          } else {
            this.#startStream();
            this.#state = State.ChunkLength;
          }
          break;
        }
        case State.ChunkLength: {
          const at = this.#int(bytes, i, false);
          if (at < 0) return;
          i = at;
          const length = this.#lastInt;
          if (length < 0) throw archiveError(`negative chunk length ${length}`);
          if (length === 0) {
            this.#endStream();
            this.#state = this.#blockType === BLK_DATA ? State.BlockType : State.BlobOid;
          } else {
            this.#chunkLeft = length;
            this.#state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.#chunkLeft, bytes.length - i);
          this.#append(bytes, i, take);
          i += take;
          this.#chunkLeft -= take;
          if (this.#chunkLeft === 0) this.#state = State.ChunkLength;
          break;
        }
      }
    }
    this.#flushRaw();
  }

  /** The archive has ended: it must end between data blocks. */
  finish(): void {
    if (this.#state === State.Head) throw archiveError("it ended inside its header or TOC");
    if (this.#state !== State.BlockType || this.#partLength !== 0) {
      throw archiveError("it ended inside a data block (was pg_dump killed?)");
    }
    this.#flushRaw();
  }

  /**
   * Reads an int at `i` into #lastInt and returns where it ends, or -1 when the
   * buffer ends first (the bytes are kept for the next feed). Ints that frame the
   * archive (ids, oids) are copied to the output as they are, chunk lengths not.
   */
  #int(bytes: Uint8Array, i: number, copy = true): number {
    const size = this.#intSize + 1;
    let end: number;
    if (this.#partLength === 0 && bytes.length - i >= size) {
      this.#lastInt = decodeInt(bytes, i, this.#intSize);
      if (copy) { for (let k = i; k < i + size; k++) this.#raw.push(bytes[k]); }
      end = i + size;
    } else {
      const take = Math.min(size - this.#partLength, bytes.length - i);
      this.#part.set(bytes.subarray(i, i + take), this.#partLength);
      this.#partLength += take;
      if (this.#partLength < size) return -1;
      this.#lastInt = decodeInt(this.#part, 0, this.#intSize);
      if (copy) { for (let k = 0; k < size; k++) this.#raw.push(this.#part[k]); }
      this.#partLength = 0;
      end = i + take;
    }
    return end;
  }

  /** Buffers header and TOC until the TOC is whole; returns the bytes after it, or null. */
  #feedHead(bytes: Uint8Array): Uint8Array | null {
    if (this.#headLength + bytes.length > this.#head.length) {
      const grown = new Uint8Array(
        Math.max(this.#head.length * 2, this.#headLength + bytes.length),
      );
      grown.set(this.#head.subarray(0, this.#headLength));
      this.#head = grown;
    }
    this.#head.set(bytes, this.#headLength);
    this.#headLength += bytes.length;
    const reader = new HeadReader(this.#head, this.#headLength);
    try {
      if (this.#tocAt < 0) this.#readHeader(reader);
      reader.intSize = this.#intSize;
      reader.pos = this.#tocAt;
      while (this.#tocLeft > 0) {
        this.#readTocEntry(reader);
        this.#tocAt = reader.pos;
        this.#tocLeft--;
      }
    } catch (error) {
      if (error instanceof NeedMore) return null;
      throw error;
    }
    const head = this.#head.slice(0, this.#tocAt);
    // The compression field follows magic, version, intSize, offSize and format.
    head[11] = 0;
    head.fill(0, 12, 12 + this.#intSize);
    head[12] = this.#level;
    this.out.push(head);
    const rest = this.#head.slice(this.#tocAt, this.#headLength);
    this.#head = new Uint8Array(0);
    this.#state = State.BlockType;
    return rest;
  }

  #readHeader(reader: HeadReader): void {
    reader.skip(MAGIC.length);
    const magic = new TextDecoder().decode(this.#head.subarray(0, MAGIC.length));
    if (magic !== MAGIC) throw archiveError("it does not start with PGDMP");
    const major = reader.byte();
    const minor = reader.byte();
    reader.byte(); // revision
    this.#version = major * 256 + minor;
    if (this.#version < MIN_VERSION || this.#version > MAX_VERSION) {
      throw archiveError(
        `archive version ${major}.${minor} is not one cairn can recompress (1.12 to 1.14)`,
      );
    }
    this.#intSize = reader.byte();
    this.#offSize = reader.byte();
    if (this.#intSize < 1 || this.#intSize > 8 || this.#offSize < 1 || this.#offSize > 8) {
      throw archiveError(`implausible integer sizes ${this.#intSize}/${this.#offSize}`);
    }
    reader.intSize = this.#intSize;
    const format = reader.byte();
    if (format !== 1) throw archiveError(`format ${format} is not the custom format`);
    const compression = reader.int();
    if (compression !== 0) {
      throw archiveError(`it is already compressed (level ${compression}); cairn asked for -Z0`);
    }
    for (let k = 0; k < 7; k++) reader.int(); // creation time
    reader.str(); // database name
    reader.str(); // server version
    reader.str(); // pg_dump version
    this.#tocLeft = reader.int();
    if (this.#tocLeft < 0) throw archiveError(`negative TOC size ${this.#tocLeft}`);
    this.#tocAt = reader.pos;
  }

  #readTocEntry(reader: HeadReader): void {
    reader.int(); // dump id
    reader.int(); // had dumper
    for (let k = 0; k < 4; k++) reader.str(); // table oid, oid, tag, desc
    reader.int(); // section
    // defn, drop, copy statement, namespace, tablespace, [table AM], owner, with-oids
    const strings = this.#version >= 0x010e ? 8 : 7;
    for (let k = 0; k < strings; k++) reader.str();
    while (reader.str()) { /* dependencies, ended by NULL */ }
    // The data offset: a flag and a position. Positions in the uncompressed archive
    // are wrong in ours, so a set one becomes "not set" and pg_restore finds the
    // block by reading forward (as it does for any archive pg_dump wrote to a pipe).
    const flag = reader.pos;
    reader.skip(1 + this.#offSize);
    if (this.#head[flag] === OFFSET_POS_SET) {
      this.#head[flag] = OFFSET_POS_NOT_SET;
      this.#head.fill(0, flag + 1, flag + 1 + this.#offSize);
    }
  }

  #startStream(): void {
    this.#stream = { started: false, pieces: [] };
    this.#groupLength = 0;
  }

  #append(bytes: Uint8Array, at: number, length: number): void {
    while (length > 0) {
      const take = Math.min(length, this.#pieceSize - this.#groupLength);
      this.#group.set(bytes.subarray(at, at + take), this.#groupLength);
      this.#groupLength += take;
      at += take;
      length -= take;
      if (this.#groupLength === this.#pieceSize) this.#submit();
    }
  }

  #submit(): void {
    const stream = this.#stream!;
    const plain = this.#group.subarray(0, this.#groupLength);
    this.#group = this.#spare.pop() ?? new Uint8Array(this.#pieceSize);
    this.#groupLength = 0;
    const first = !stream.started;
    stream.started = true;
    // Room for the chunk's length and, first in a stream, the zlib header.
    const headroom = 1 + this.#intSize + (first ? ZLIB_HEADER.length : 0);
    const piece = this.#deflate(plain, headroom).then((d) => {
      // Reused, not left to the collector: a worker's heap would otherwise keep
      // hundreds of MiB of handed-over pieces between its collections.
      if (d.plain?.buffer.byteLength === this.#pieceSize) {
        this.#spare.push(new Uint8Array(d.plain.buffer));
      }
      d.plain = undefined;
      return d;
    });
    piece.catch(() => {});
    // Only the checksum is kept for the trailer, not the compressed bytes.
    const check = piece.then((d) => ({ adler: d.adler, length: d.length }));
    check.catch(() => {});
    stream.pieces.push(check);
    this.#push(piece.then((d) => {
      this.#writeHeader(d.bytes, d.bytes.length - 1 - this.#intSize);
      if (first) d.bytes.set(ZLIB_HEADER, 1 + this.#intSize);
      return d.bytes;
    }));
  }

  #endStream(): void {
    const stream = this.#stream!;
    if (this.#groupLength > 0) this.#submit();
    const first = !stream.started;
    const trailer = Promise.all(stream.pieces).then((pieces) => {
      let adler = 1;
      for (const p of pieces) adler = adler32Combine(adler, p.adler, p.length);
      const check = [adler >>> 24, (adler >>> 16) & 0xff, (adler >>> 8) & 0xff, adler & 0xff];
      return this.#frame([...(first ? ZLIB_HEADER : []), ...FINAL_BLOCK, ...check]);
    });
    this.#push(trailer);
    this.#stream = null;
    // The zero length that ends the stream.
    this.#raw.push(0);
    for (let k = 0; k < this.#intSize; k++) this.#raw.push(0);
  }

  /** One chunk as pg_dump writes it: its length as an int, then the bytes. */
  #frame(body: number[]): Uint8Array {
    const out = new Uint8Array(1 + this.#intSize + body.length);
    this.#writeHeader(out, body.length);
    out.set(body, 1 + this.#intSize);
    return out;
  }

  /** A chunk's length, as a non-negative int, at the start of `out`. */
  #writeHeader(out: Uint8Array, length: number): void {
    out[0] = 0;
    for (let k = 1; k <= this.#intSize; k++) {
      out[k] = length % 256;
      length = Math.floor(length / 256);
    }
  }

  #push(item: Promise<Uint8Array>): void {
    // A stopped run (cancel, failure) never awaits what is left in `out`.
    item.catch(() => {});
    this.#flushRaw();
    this.out.push(item);
    this.pending++;
  }

  #flushRaw(): void {
    if (this.#raw.length === 0) return;
    this.out.push(Uint8Array.from(this.#raw));
    this.#raw = [];
  }
}

/**
 * The recompressed archive as a stream: at most `inFlight` pieces are being
 * compressed at once, so memory stays a few pieces whatever the database size.
 */
export async function* recompressArchive(
  source: AsyncIterable<Uint8Array>,
  deflate: DeflatePiece,
  options: { level: number; inFlight: number; pieceSize?: number },
): AsyncGenerator<Uint8Array> {
  const rewriter = new ArchiveRecompressor(deflate, options);
  const take = async (): Promise<Uint8Array> => {
    const item = rewriter.out.shift()!;
    if (item instanceof Uint8Array) return item;
    rewriter.pending--;
    return await item;
  };
  for await (const bytes of source) {
    rewriter.feed(bytes);
    while (rewriter.out.length > 0 && (rewriter.pending > options.inFlight || ready(rewriter))) {
      yield await take();
    }
  }
  rewriter.finish();
  while (rewriter.out.length > 0) yield await take();
}

function ready(rewriter: ArchiveRecompressor): boolean {
  return rewriter.out[0] instanceof Uint8Array;
}

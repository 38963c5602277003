import { ByteQueue } from "../../io/byte_queue.ts";
import { Crc64 } from "./crc64.ts";
import { listpackEntries } from "./listpack.ts";
import { lzfDecompress } from "./lzf.ts";
import { scanKeyEntry } from "./rdb_scan.ts";

/** Value types (rdb.h). */
export const T = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21,
  HASH_METADATA_PRE_GA: 22,
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
} as const;

const OP = {
  SLOT_INFO: 0xf4,
  FUNCTION2: 0xf5,
  FUNCTION_PRE_GA: 0xf6,
  MODULE_AUX: 0xf7,
  IDLE: 0xf8,
  FREQ: 0xf9,
  AUX: 0xfa,
  RESIZEDB: 0xfb,
  EXPIRETIME_MS: 0xfc,
  EXPIRETIME: 0xfd,
  SELECTDB: 0xfe,
  EOF: 0xff,
} as const;

export class RdbError extends Error {
  constructor(message: string, offset: number) {
    super(`Invalid RDB at byte ${offset}: ${message}`);
    this.name = "RdbError";
  }
}

export type RdbEvent =
  | { kind: "aux"; key: string; value: string }
  | { kind: "db"; db: number }
  | { kind: "resize"; size: number; expires: number }
  | { kind: "function"; code: Uint8Array }
  | { kind: "module_aux" }
  | { kind: "slot_info" }
  | {
    kind: "key";
    db: number;
    type: number;
    key: Uint8Array;
    expireMs: number | null;
    idle: number | null;
    freq: number | null;
  };

/** One element group of a collection, decoded (element mode). */
export type Element =
  | { op: "push"; value: Uint8Array }
  | { op: "member"; value: Uint8Array }
  | { op: "field"; field: Uint8Array; value: Uint8Array }
  | { op: "score"; member: Uint8Array; score: string };

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * A streaming reader of Redis RDB files (v1-v12). Every byte before the trailer goes
 * through CRC-64; `end()` checks it. After a "key" event, consume the value with
 * skipValue(), captureValue() or elements(), or streamString() for strings.
 */
/** A key entry read whole by the fast path: `raw` is the value as serialized. */
export interface KeyEntry {
  db: number;
  type: number;
  key: Uint8Array;
  raw: Uint8Array;
  expireMs: number | null;
  idle: number | null;
  freq: number | null;
}

export class RdbReader {
  readonly q: ByteQueue;
  readonly crc = new Crc64();
  version = 0;
  #db = 0;
  #pendingValue = false;
  #ended = false;
  checksum: "ok" | "absent" | null = null;

  readonly #checksum: boolean;

  /**
   * `checksum: false` skips the CRC-64 for a pass over bytes whose sha256 was
   * already verified against the manifest (restore's second pass).
   */
  constructor(stream: ReadableStream<Uint8Array>, options: { checksum?: boolean } = {}) {
    this.q = new ByteQueue(stream);
    this.#checksum = options.checksum ?? true;
    if (this.#checksum) {
      this.q.onConsume = (bytes) => this.crc.update(bytes);
      this.q.onConsumeByte = (b) => this.crc.updateByte(b);
    }
  }

  #fail(message: string): never {
    throw new RdbError(message, this.q.offset);
  }

  async header(): Promise<number> {
    const magic = await this.q.readExact(9);
    if (!magic) this.#fail("empty file");
    const text = decoder.decode(magic);
    if (!/^REDIS\d{4}$/.test(text)) {
      this.#fail(`not an RDB file (header ${JSON.stringify(text.replace(/[^\x20-\x7e]/g, "?"))})`);
    }
    this.version = Number(text.slice(5));
    if (this.version < 1 || this.version > 12) {
      this.#fail(`unsupported RDB version ${this.version}`);
    }
    return this.version;
  }

  /** Length encoding; `special` is set for the 0b11 string encodings. */
  async length(): Promise<{ value: number; special: boolean }> {
    let b = this.q.tryU8();
    if (b < 0) b = await this.q.u8();
    const kind = b >> 6;
    if (kind === 0) return { value: b & 0x3f, special: false };
    if (kind === 1) {
      let lo = this.q.tryU8();
      if (lo < 0) lo = await this.q.u8();
      return { value: ((b & 0x3f) << 8) | lo, special: false };
    }
    if (kind === 3) return { value: b & 0x3f, special: true };
    if (b === 0x80) {
      const d = await this.q.need(4);
      return { value: new DataView(d.buffer, d.byteOffset, 4).getUint32(0, false), special: false };
    }
    if (b === 0x81) {
      const d = await this.q.need(8);
      const v = new DataView(d.buffer, d.byteOffset, 8);
      return { value: v.getUint32(0, false) * 2 ** 32 + v.getUint32(4, false), special: false };
    }
    this.#fail(`bad length encoding 0x${b.toString(16)}`);
  }

  async len(): Promise<number> {
    const l = await this.length();
    if (l.special) this.#fail("expected a length, found a string encoding");
    return l.value;
  }

  /** A string, decoded (integer encodings become their decimal text, LZF is inflated). */
  async string(): Promise<Uint8Array> {
    const l = await this.length();
    if (!l.special) return this.q.tryView(l.value) ?? await this.q.need(l.value);
    switch (l.value) {
      case 0: {
        const b = await this.q.need(1);
        return encoder.encode(String(new DataView(b.buffer, b.byteOffset, 1).getInt8(0)));
      }
      case 1: {
        const b = await this.q.need(2);
        return encoder.encode(String(new DataView(b.buffer, b.byteOffset, 2).getInt16(0, true)));
      }
      case 2: {
        const b = await this.q.need(4);
        return encoder.encode(String(new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true)));
      }
      case 3: {
        const clen = await this.len();
        const ulen = await this.len();
        const data = await this.q.need(clen);
        try {
          return lzfDecompress(data, ulen);
        } catch (error) {
          this.#fail((error as Error).message);
        }
      }
    }
    this.#fail(`unknown string encoding ${l.value}`);
  }

  async skipString(): Promise<void> {
    const l = await this.length();
    if (!l.special) {
      if (this.q.tryView(l.value) === null) await this.q.skip(l.value);
      return;
    }
    if (l.value === 0) return await this.q.skip(1);
    if (l.value === 1) return await this.q.skip(2);
    if (l.value === 2) return await this.q.skip(4);
    if (l.value === 3) {
      const clen = await this.len();
      await this.len();
      return await this.q.skip(clen);
    }
    this.#fail(`unknown string encoding ${l.value}`);
  }

  /**
   * The next key with its whole value's serialized bytes, when the entry lies inside
   * the buffered head chunk: no await, views instead of copies. Null when the async
   * path (next(), then a value method) must read it; nothing is consumed then, and
   * likewise for a plain collection of more than `elementThreshold` elements.
   */
  tryKeyEntry(elementThreshold = Infinity): KeyEntry | null {
    if (this.#pendingValue || this.#ended) return null;
    const head = this.q.peekHead();
    if (!head) return null;
    const s = scanKeyEntry(head, 0);
    // A collection past the threshold is the caller's to replay element by element.
    if (!s || s.count > elementThreshold) return null;
    const bytes = this.q.advance(s.end);
    return {
      db: this.#db,
      type: s.type,
      key: bytes.subarray(s.keyStart, s.keyEnd),
      raw: bytes.subarray(s.valueStart, s.end),
      expireMs: s.expireMs,
      idle: s.idle,
      freq: s.freq,
    };
  }

  /** The next event, or null after EOF (whose checksum has then been verified). */
  async next(): Promise<RdbEvent | null> {
    if (this.#pendingValue) this.#fail("the previous key's value was not consumed");
    if (this.#ended) return null;
    let expireMs: number | null = null, idle: number | null = null, freq: number | null = null;
    for (;;) {
      let op = this.q.tryU8();
      if (op < 0) op = await this.q.u8();
      switch (op) {
        case OP.EOF:
          await this.#end();
          return null;
        case OP.SELECTDB:
          this.#db = await this.len();
          return { kind: "db", db: this.#db };
        case OP.RESIZEDB:
          return { kind: "resize", size: await this.len(), expires: await this.len() };
        case OP.AUX:
          return {
            kind: "aux",
            key: decoder.decode(await this.string()),
            value: decoder.decode(await this.string()),
          };
        case OP.EXPIRETIME_MS: {
          const d = await this.q.need(8);
          expireMs = Number(new DataView(d.buffer, d.byteOffset, 8).getBigInt64(0, true));
          continue;
        }
        case OP.EXPIRETIME: {
          const d = await this.q.need(4);
          expireMs = new DataView(d.buffer, d.byteOffset, 4).getInt32(0, true) * 1000;
          continue;
        }
        case OP.IDLE:
          idle = await this.len();
          continue;
        case OP.FREQ:
          freq = await this.q.u8();
          continue;
        case OP.FUNCTION2:
          return { kind: "function", code: await this.string() };
        case OP.FUNCTION_PRE_GA:
          this.#fail("functions from a Redis 7.0 release candidate are not supported");
          break;
        case OP.MODULE_AUX:
          await this.len(); // module id
          await this.#skipModuleOpcodes();
          return { kind: "module_aux" };
        case OP.SLOT_INFO:
          await this.len();
          await this.len();
          await this.len();
          return { kind: "slot_info" };
        default: {
          if (!isKnownType(op)) this.#fail(`unknown value type ${op} (written by a newer Redis?)`);
          const key = await this.string();
          this.#pendingValue = true;
          return { kind: "key", db: this.#db, type: op, key, expireMs, idle, freq };
        }
      }
    }
  }

  async #end(): Promise<void> {
    this.#ended = true;
    this.q.onConsume = null; // the trailer is not part of what it checks
    this.q.onConsumeByte = null;
    if (this.version >= 5) {
      const stored = await this.q.need(8);
      if (!this.#checksum) this.checksum = null;
      else if (stored.every((b) => b === 0)) this.checksum = "absent";
      else if (!this.crc.equals(stored)) {
        this.#fail(
          `CRC-64 mismatch: the file says ${hex(stored)}, its bytes give ${this.crc.hex()}`,
        );
      } else this.checksum = "ok";
    } else this.checksum = "absent";
  }

  async #skipModuleOpcodes(): Promise<void> {
    for (;;) {
      const opcode = await this.len();
      if (opcode === 0) return;
      if (opcode === 1 || opcode === 2) await this.len();
      else if (opcode === 3) await this.q.skip(4);
      else if (opcode === 4) await this.q.skip(8);
      else if (opcode === 5) await this.skipString();
      else this.#fail(`unknown module opcode ${opcode}`);
    }
  }

  /** Walks a value without keeping it; `count` is a collection's element count if already read. */
  async skipValue(type: number, count?: number): Promise<void> {
    this.#pendingValue = false;
    const len = () => count !== undefined ? Promise.resolve(count) : this.len();
    const s = () => this.skipString();
    switch (type) {
      case T.STRING:
      case T.HASH_ZIPMAP:
      case T.LIST_ZIPLIST:
      case T.SET_INTSET:
      case T.ZSET_ZIPLIST:
      case T.HASH_ZIPLIST:
      case T.HASH_LISTPACK:
      case T.ZSET_LISTPACK:
      case T.SET_LISTPACK:
        return await s();
      case T.LIST:
      case T.SET:
      case T.LIST_QUICKLIST:
        for (let n = await len(); n > 0; n--) await s();
        return;
      case T.HASH:
        for (let n = await len(); n > 0; n--) (await s(), await s());
        return;
      case T.ZSET:
        for (let n = await len(); n > 0; n--) {
          await s();
          const l = await this.q.u8();
          if (l < 253) await this.q.skip(l);
        }
        return;
      case T.ZSET_2:
        for (let n = await len(); n > 0; n--) (await s(), await this.q.skip(8));
        return;
      case T.LIST_QUICKLIST_2:
        for (let n = await len(); n > 0; n--) (await this.len(), await s());
        return;
      case T.MODULE_2:
        await this.len();
        return await this.#skipModuleOpcodes();
      case T.STREAM_LISTPACKS:
      case T.STREAM_LISTPACKS_2:
      case T.STREAM_LISTPACKS_3:
        return await this.#skipStream(type);
      case T.HASH_METADATA:
        await this.q.skip(8);
        for (let n = await this.len(); n > 0; n--) (await this.len(), await s(), await s());
        return;
      case T.HASH_LISTPACK_EX:
        await this.q.skip(8);
        return await s();
    }
    this.#fail(`value type ${type} cannot be read`);
  }

  async #skipStream(type: number): Promise<void> {
    for (let n = await this.len(); n > 0; n--) (await this.skipString(), await this.skipString());
    await this.len(); // length
    await this.len(), await this.len(); // last id
    if (type >= T.STREAM_LISTPACKS_2) {
      for (let i = 0; i < 5; i++) await this.len(); // first id, max deleted id, entries added
    }
    for (let groups = await this.len(); groups > 0; groups--) {
      await this.skipString(); // name
      await this.len(), await this.len(); // last id
      if (type >= T.STREAM_LISTPACKS_2) await this.len(); // entries read
      for (let pel = await this.len(); pel > 0; pel--) {
        (await this.q.skip(16 + 8), await this.len());
      }
      for (let consumers = await this.len(); consumers > 0; consumers--) {
        await this.skipString();
        await this.q.skip(type >= T.STREAM_LISTPACKS_3 ? 16 : 8); // seen (and active) time
        for (let pel = await this.len(); pel > 0; pel--) await this.q.skip(16);
      }
    }
  }

  /**
   * The value's serialized bytes exactly as stored (for a DUMP payload), or null past
   * `limit`. For a plain collection with more than `elementThreshold` elements it
   * stops after the count and returns that count instead, so the caller can switch
   * to elements() without the value ever being held whole.
   */
  async captureValue(
    type: number,
    limit: number,
    elementThreshold = Infinity,
  ): Promise<{ raw: Uint8Array[] | null } | { count: number }> {
    this.q.startCapture(limit);
    let count: number | undefined;
    if (RdbReader.elementModeTypes.has(type)) {
      count = await this.len();
      if (count > elementThreshold) {
        this.q.stopCapture();
        return { count };
      }
    }
    await this.skipValue(type, count);
    return { raw: this.q.stopCapture() };
  }

  /** Plain collections that can be replayed element by element. */
  static elementModeTypes: ReadonlySet<number> = new Set([
    T.LIST,
    T.SET,
    T.ZSET,
    T.HASH,
    T.ZSET_2,
    T.LIST_QUICKLIST_2,
  ]);

  /** Decodes a plain collection element by element, never holding the whole value. */
  async *elements(type: number, count?: number): AsyncGenerator<Element> {
    this.#pendingValue = false;
    this.q.stopCapture();
    const n = count ?? await this.len();
    for (let i = 0; i < n; i++) {
      switch (type) {
        case T.LIST:
          yield { op: "push", value: await this.string() };
          break;
        case T.SET:
          yield { op: "member", value: await this.string() };
          break;
        case T.HASH:
          yield { op: "field", field: await this.string(), value: await this.string() };
          break;
        case T.ZSET: {
          const member = await this.string();
          const l = await this.q.u8();
          const score = l === 253
            ? "nan"
            : l === 254
            ? "inf"
            : l === 255
            ? "-inf"
            : decoder.decode(await this.q.need(l));
          yield { op: "score", member, score };
          break;
        }
        case T.ZSET_2: {
          const member = await this.string();
          const d = await this.q.need(8);
          yield {
            op: "score",
            member,
            score: formatScore(new DataView(d.buffer, d.byteOffset, 8).getFloat64(0, true)),
          };
          break;
        }
        case T.LIST_QUICKLIST_2: {
          const container = await this.len();
          const blob = await this.string();
          if (container === 1) yield { op: "push", value: blob };
          else for (const value of listpackEntries(blob)) yield { op: "push", value };
          break;
        }
        default:
          this.#fail(`value type ${type} has no element mode`);
      }
    }
  }

  /**
   * A string value's raw encoding streamed without buffering it: the byte count is
   * known before the first byte (needed for a RESP bulk header), then the chunks.
   */
  async streamString(): Promise<
    { size: number; chunks: () => AsyncGenerator<Uint8Array>; whole: () => Promise<Uint8Array> }
  > {
    this.#pendingValue = false;
    let first = this.q.tryU8();
    if (first < 0) first = await this.q.u8();
    const kind = first >> 6;
    const head: number[] = [first];
    let rest: number;
    if (kind === 0) rest = first & 0x3f;
    else if (kind === 1) {
      let b = this.q.tryU8();
      if (b < 0) b = await this.q.u8();
      head.push(b);
      rest = ((first & 0x3f) << 8) | b;
    } else if (first === 0x80 || first === 0x81) {
      const d = await this.q.need(first === 0x80 ? 4 : 8);
      head.push(...d);
      const v = new DataView(d.buffer, d.byteOffset, d.length);
      rest = first === 0x80
        ? v.getUint32(0, false)
        : v.getUint32(0, false) * 2 ** 32 + v.getUint32(4, false);
    } else if (kind === 3) {
      const special = first & 0x3f;
      if (special === 0) rest = 1;
      else if (special === 1) rest = 2;
      else if (special === 2) rest = 4;
      else if (special === 3) {
        // LZF: the two lengths are part of the encoding; only the compressed bytes follow.
        this.q.startCapture(32);
        const clen = await this.len();
        await this.len();
        head.push(...(this.q.stopCapture() ?? []).flatMap((c) => [...c]));
        rest = clen;
      } else this.#fail(`unknown string encoding ${special}`);
    } else this.#fail(`bad length encoding 0x${first.toString(16)}`);
    const q = this.q;
    const prefix = new Uint8Array(head);
    return {
      size: prefix.length + rest!,
      /** The whole encoding in one buffer: for small strings, without a generator per key. */
      whole: async () => {
        const out = new Uint8Array(prefix.length + rest!);
        out.set(prefix);
        if (rest! > 0) out.set(q.tryView(rest!) ?? await q.need(rest!), prefix.length);
        return out;
      },
      chunks: async function* () {
        yield prefix;
        let left = rest!;
        while (left > 0) {
          const chunk = await q.readSome(Math.min(left, 1 << 20));
          left -= chunk.byteLength;
          // A view, not a copy: the consumer is done with it before asking for the
          // next (sendStreamed awaits each write), and chunks are never written to.
          yield chunk;
        }
      },
    };
  }
}

function isKnownType(t: number): boolean {
  return (t >= 0 && t <= 7 && t !== 6) || (t >= 9 && t <= 21) || t === 24 || t === 25;
}

function hex(b: Uint8Array): string {
  return [...b].reverse().map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** A double as ZADD reads it back exactly. */
export function formatScore(v: number): string {
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return String(v);
}

/**
 * CRC-64 over a whole RDB file's bytes except its last 8 (the stored checksum),
 * computed chunk by chunk as they pass: far cheaper than per parser read.
 */
function trailingChecksum(): {
  transform: TransformStream<Uint8Array, Uint8Array>;
  result: () => { crc: Crc64; stored: Uint8Array };
} {
  const crc = new Crc64();
  let tail = new Uint8Array(0);
  const transform = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      const buf = new Uint8Array(tail.length + chunk.length);
      buf.set(tail);
      buf.set(chunk, tail.length);
      const cut = buf.length - 8;
      if (cut > 0) {
        crc.update(buf.subarray(0, cut));
        tail = buf.slice(cut);
      } else tail = buf;
      controller.enqueue(chunk);
    },
  });
  return { transform, result: () => ({ crc, stored: tail }) };
}

/** Counts keys per database and checks the checksum: what verify and backup need. */
export async function inspectRdb(stream: ReadableStream<Uint8Array>, signal?: AbortSignal) {
  const check = trailingChecksum();
  const reader = new RdbReader(stream.pipeThrough(check.transform), { checksum: false });
  const version = await reader.header();
  // Counted by db number, named "db<n>" once at the end: no string built per key.
  const keyCounts: number[] = [];
  const expireCounts: number[] = [];
  const count = (db: number, expires: boolean) => {
    keyCounts[db] = (keyCounts[db] ?? 0) + 1;
    if (expires) expireCounts[db] = (expireCounts[db] ?? 0) + 1;
  };
  const aux: Record<string, string> = {};
  let functions = 0;
  let n = 0;
  for (;;) {
    const fast = reader.tryKeyEntry();
    if (fast) {
      count(fast.db, fast.expireMs !== null);
      if (++n % 4096 === 0) signal?.throwIfAborted();
      continue;
    }
    const e = await reader.next();
    if (!e) break;
    if (e.kind === "key") {
      count(e.db, e.expireMs !== null);
      await reader.skipValue(e.type);
      if (++n % 4096 === 0) signal?.throwIfAborted();
    } else if (e.kind === "aux") aux[e.key] = e.value;
    else if (e.kind === "function") functions++;
  }
  const named = (counts: number[]) =>
    Object.fromEntries(
      counts.flatMap((c, db) => (c ? [[`db${db}`, c] as [string, number]] : [])),
    );
  const keys = named(keyCounts), expires = named(expireCounts);
  if (!(await reader.q.atEnd())) {
    throw new RdbError("bytes follow the end of the RDB", reader.q.offset);
  }
  const { crc, stored } = check.result();
  let checksum: "ok" | "absent";
  if (version < 5 || stored.every((b) => b === 0)) checksum = "absent";
  else if (stored.length !== 8 || !crc.equals(stored)) {
    throw new RdbError(
      `CRC-64 mismatch: the file says ${hex(stored)}, its bytes give ${crc.hex()}`,
      reader.q.offset,
    );
  } else checksum = "ok";
  return { rdb_version: version, keys, expires, aux, functions, checksum };
}

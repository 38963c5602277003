/**
 * Synchronous scanning of one RDB key entry inside a single buffer: the fast path
 * of the streaming reader. Almost every entry of a real RDB lies wholly inside the
 * chunk being read; scanning it with plain index arithmetic (no await, no object
 * per length) is what lets a million keys parse in a fraction of the async path's
 * time. Anything unusual (an entry crossing the end of the buffer, a rare type, an
 * encoded key) answers INCOMPLETE and the async reader takes over from the same
 * place, so the fast path never has to be complete, only right.
 */

/** Not decidable within this buffer: let the async reader handle the entry. */
export const INCOMPLETE = -1;

// Opcodes and types the scanner recognises (rdb.h); see rdb_reader.ts for all.
const EXPIRETIME_MS = 0xfc, EXPIRETIME = 0xfd, IDLE = 0xf8, FREQ = 0xf9;
const STRING = 0, LIST = 1, SET = 2, ZSET = 3, HASH = 4, ZSET_2 = 5;
const LIST_QUICKLIST = 14, LIST_QUICKLIST_2 = 18;
/** Types whose whole value is one string-encoded blob (ziplist, listpack, intset...). */
const BLOB_TYPES = new Set([STRING, 9, 10, 11, 12, 13, 16, 17, 20]);

/** A scanned entry. Offsets are into the scanned buffer; `end` is where the value ends. */
export interface ScannedEntry {
  type: number;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  end: number;
  /** A collection's element count as serialized; -1 for a one-blob value. */
  count: number;
  expireMs: number | null;
  idle: number | null;
  freq: number | null;
}

// Length decoding returns two numbers; module-level registers avoid an object per call.
let lenValue = 0;

/** Decodes a plain length at `pos` into lenValue; the next offset, or INCOMPLETE. */
function lengthAt(buf: Uint8Array, pos: number): number {
  if (pos >= buf.length) return INCOMPLETE;
  const b = buf[pos];
  const kind = b >> 6;
  if (kind === 0) {
    lenValue = b & 0x3f;
    return pos + 1;
  }
  if (kind === 1) {
    if (pos + 2 > buf.length) return INCOMPLETE;
    lenValue = ((b & 0x3f) << 8) | buf[pos + 1];
    return pos + 2;
  }
  if (b === 0x80) {
    if (pos + 5 > buf.length) return INCOMPLETE;
    lenValue = ((buf[pos + 1] << 24) >>> 0) + (buf[pos + 2] << 16) + (buf[pos + 3] << 8) +
      buf[pos + 4];
    return pos + 5;
  }
  return INCOMPLETE; // 64-bit lengths and string encodings: the async reader knows them
}

/** The offset after the string encoded at `pos` (any encoding), or INCOMPLETE. */
export function stringEnd(buf: Uint8Array, pos: number): number {
  if (pos >= buf.length) return INCOMPLETE;
  const b = buf[pos];
  let end: number;
  if (b >> 6 === 3) {
    const special = b & 0x3f;
    if (special === 0) end = pos + 2;
    else if (special === 1) end = pos + 3;
    else if (special === 2) end = pos + 5;
    else if (special === 3) {
      let p = lengthAt(buf, pos + 1);
      if (p === INCOMPLETE) return INCOMPLETE;
      const clen = lenValue;
      p = lengthAt(buf, p);
      if (p === INCOMPLETE) return INCOMPLETE;
      end = p + clen;
    } else return INCOMPLETE;
  } else {
    const p = lengthAt(buf, pos);
    if (p === INCOMPLETE) return INCOMPLETE;
    end = p + lenValue;
  }
  return end <= buf.length ? end : INCOMPLETE;
}

/** The offset after a value of `type` starting at `pos`, or INCOMPLETE. */
export function valueEnd(buf: Uint8Array, pos: number, type: number): number {
  if (BLOB_TYPES.has(type)) return stringEnd(buf, pos);
  let p = lengthAt(buf, pos);
  if (p === INCOMPLETE) return INCOMPLETE;
  let n = lenValue;
  switch (type) {
    case LIST:
    case SET:
    case LIST_QUICKLIST:
      for (; n > 0 && p !== INCOMPLETE; n--) p = stringEnd(buf, p);
      return p;
    case HASH:
      for (; n > 0 && p !== INCOMPLETE; n--) {
        p = stringEnd(buf, p);
        if (p !== INCOMPLETE) p = stringEnd(buf, p);
      }
      return p;
    case ZSET:
      for (; n > 0 && p !== INCOMPLETE; n--) {
        p = stringEnd(buf, p);
        if (p === INCOMPLETE || p >= buf.length) return INCOMPLETE;
        const l = buf[p];
        p += 1 + (l < 253 ? l : 0);
        if (p > buf.length) return INCOMPLETE;
      }
      return p;
    case ZSET_2:
      for (; n > 0 && p !== INCOMPLETE; n--) {
        p = stringEnd(buf, p);
        if (p !== INCOMPLETE) p = p + 8 <= buf.length ? p + 8 : INCOMPLETE;
      }
      return p;
    case LIST_QUICKLIST_2:
      for (; n > 0 && p !== INCOMPLETE; n--) {
        p = lengthAt(buf, p); // container
        if (p !== INCOMPLETE) p = stringEnd(buf, p);
      }
      return p;
    default:
      return INCOMPLETE; // streams, modules, hashes with field expiry: the async reader
  }
}

/** Whether `op` starts a key entry the scanner can read (value type or its prefixes). */
function isScannable(op: number): boolean {
  return op <= 5 || BLOB_TYPES.has(op) || op === LIST_QUICKLIST || op === LIST_QUICKLIST_2;
}

/**
 * Scans the key entry at `pos` (optional expiry, idle and freq prefixes, the type,
 * a plain key, the value) or answers null when the async reader must.
 */
export function scanKeyEntry(buf: Uint8Array, pos: number): ScannedEntry | null {
  let expireMs: number | null = null, idle: number | null = null, freq: number | null = null;
  let p = pos;
  for (;;) {
    if (p >= buf.length) return null;
    const op = buf[p];
    if (op === EXPIRETIME_MS) {
      if (p + 9 > buf.length) return null;
      const view = new DataView(buf.buffer, buf.byteOffset + p + 1, 8);
      expireMs = Number(view.getBigInt64(0, true));
      p += 9;
    } else if (op === EXPIRETIME) {
      if (p + 5 > buf.length) return null;
      expireMs = new DataView(buf.buffer, buf.byteOffset + p + 1, 4).getInt32(0, true) * 1000;
      p += 5;
    } else if (op === IDLE) {
      p = lengthAt(buf, p + 1);
      if (p === INCOMPLETE) return null;
      idle = lenValue;
    } else if (op === FREQ) {
      if (p + 2 > buf.length) return null;
      freq = buf[p + 1];
      p += 2;
    } else if (isScannable(op)) {
      const keyAt = lengthAt(buf, p + 1); // encoded (integer, LZF) keys go the slow way
      if (keyAt === INCOMPLETE) return null;
      const keyEnd = keyAt + lenValue;
      if (keyEnd > buf.length) return null;
      let count = -1;
      if (!BLOB_TYPES.has(op)) {
        if (lengthAt(buf, keyEnd) === INCOMPLETE) return null;
        count = lenValue;
      }
      const end = valueEnd(buf, keyEnd, op);
      if (end === INCOMPLETE) return null;
      return {
        type: op,
        keyStart: keyAt,
        keyEnd,
        valueStart: keyEnd,
        end,
        count,
        expireMs,
        idle,
        freq,
      };
    } else return null;
  }
}

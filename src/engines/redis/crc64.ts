/**
 * CRC-64/Jones as Redis uses it (polynomial 0xad93d23594c935a9, reflected in and
 * out, init 0, no final xor): check value of "123456789" is 0xe9c6d914c4b8d9ca.
 * Kept as two 32-bit halves: BigInt per byte would be far too slow for GiB files.
 */
import { CRC64_WASM } from "./crc64_wasm.ts";

const POLY_HI = 0x95ac9329, POLY_LO = 0xac4bc9b5; // 0xad93d23594c935a9 bit-reflected

/**
 * Table t maps a byte to its CRC contribution t positions before the end of a
 * 16-byte block (t = 0 is the bytewise table). The WebAssembly loop in crc64.wat
 * does sixteen independent lookups a block instead of sixteen dependent steps.
 */
const HI = new Uint32Array(256 * 16);
const LO = new Uint32Array(256 * 16);
for (let i = 0; i < 256; i++) {
  let hi = 0, lo = i;
  for (let b = 0; b < 8; b++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry) {
      hi = (hi ^ POLY_HI) >>> 0;
      lo = (lo ^ POLY_LO) >>> 0;
    }
  }
  HI[i] = hi;
  LO[i] = lo;
}
for (let t = 1; t < 16; t++) {
  for (let i = 0; i < 256; i++) {
    const phi = HI[(t - 1) * 256 + i], plo = LO[(t - 1) * 256 + i];
    const idx = plo & 0xff;
    LO[t * 256 + i] = (((plo >>> 8) | (phi << 24)) ^ LO[idx]) >>> 0;
    HI[t * 256 + i] = ((phi >>> 8) ^ HI[idx]) >>> 0;
  }
}

/** The memory layout crc64.wat documents. */
const STATE = 32768, DATA = 65536, DATA_SIZE = 65536;
/** From 16 bytes up the call into WebAssembly beats the bytewise loop (about 6x at 1 KiB). */
const WASM_FROM = 16;

const instance = new WebAssembly.Instance(new WebAssembly.Module(CRC64_WASM), {});
const wasmUpdate = instance.exports.update as (at: number, length: number) => void;
// The memory never grows, so these views stay attached.
const memory = new Uint8Array((instance.exports.memory as WebAssembly.Memory).buffer);
const words = new Uint32Array(memory.buffer);
for (let i = 0; i < 256 * 16; i++) words[2 * i] = LO[i], words[2 * i + 1] = HI[i];

export class Crc64 {
  hi = 0;
  lo = 0;

  update(bytes: Uint8Array): this {
    const n = bytes.length;
    if (n >= WASM_FROM) {
      words[STATE / 4] = this.lo, words[STATE / 4 + 1] = this.hi;
      for (let at = 0; at < n; at += DATA_SIZE) {
        const piece = bytes.subarray(at, at + DATA_SIZE);
        memory.set(piece, DATA);
        wasmUpdate(DATA, piece.length);
      }
      this.lo = words[STATE / 4], this.hi = words[STATE / 4 + 1];
      return this;
    }
    let hi = this.hi, lo = this.lo;
    for (let i = 0; i < n; i++) {
      const idx = (lo ^ bytes[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ LO[idx];
      hi = (hi >>> 8) ^ HI[idx];
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    return this;
  }

  updateByte(byte: number): void {
    const idx = (this.lo ^ byte) & 0xff;
    this.lo = (((this.lo >>> 8) | (this.hi << 24)) ^ LO[idx]) >>> 0;
    this.hi = ((this.hi >>> 8) ^ HI[idx]) >>> 0;
  }

  /** Writes the 8 bytes as Redis stores them (little-endian) at `at`. */
  writeTo(out: Uint8Array, at: number): void {
    const lo = this.lo, hi = this.hi;
    out[at] = lo & 0xff, out[at + 1] = (lo >>> 8) & 0xff;
    out[at + 2] = (lo >>> 16) & 0xff, out[at + 3] = lo >>> 24;
    out[at + 4] = hi & 0xff, out[at + 5] = (hi >>> 8) & 0xff;
    out[at + 6] = (hi >>> 16) & 0xff, out[at + 7] = hi >>> 24;
  }

  /** The 8 bytes as Redis stores them (little-endian). */
  bytes(): Uint8Array {
    const out = new Uint8Array(8);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.lo, true);
    view.setUint32(4, this.hi, true);
    return out;
  }

  hex(): string {
    return this.hi.toString(16).padStart(8, "0") + this.lo.toString(16).padStart(8, "0");
  }

  equals(stored: Uint8Array): boolean {
    const view = new DataView(stored.buffer, stored.byteOffset, 8);
    return view.getUint32(0, true) === this.lo && view.getUint32(4, true) === this.hi;
  }
}

export function crc64(bytes: Uint8Array): Crc64 {
  return new Crc64().update(bytes);
}

/*
 * Combining: with init 0 and no final xor the CRC is linear, so
 * crc(A || B) = crc(A) * x^(8 * |B|) mod P  xor  crc(B).
 * Pieces of a file can then be checksummed on separate threads and joined. The
 * polynomial arithmetic follows zlib's crc32_combine (multmodp, x2nmodp), in the
 * reflected bit order, on BigInt: it runs once per piece, not per byte.
 */
const POLY_R = (BigInt(POLY_HI) << 32n) | BigInt(POLY_LO);
const ONE = 1n << 63n; // x^0 in reflected order

/** a * b mod P, both reflected. */
function multModP(a: bigint, b: bigint): bigint {
  let m = ONE, p = 0n;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1n)) === 0n) return p;
    }
    m >>= 1n;
    b = b & 1n ? (b >> 1n) ^ POLY_R : b >> 1n;
  }
}

/** X2N[k] = x^(2^k) mod P. */
const X2N: bigint[] = [ONE >> 1n];
for (let k = 1; k < 64; k++) X2N.push(multModP(X2N[k - 1], X2N[k - 1]));

/** x^(n * 2^k) mod P. */
function x2nModP(n: number, k: number): bigint {
  let p = ONE;
  for (let bits = BigInt(n); bits > 0n; bits >>= 1n, k++) {
    if (bits & 1n) p = multModP(X2N[k], p);
  }
  return p;
}

/** The CRC of A followed by B, from the CRC of each and B's length in bytes. */
export function crc64Combine(a: Crc64, b: Crc64, lengthB: number): Crc64 {
  const ca = (BigInt(a.hi) << 32n) | BigInt(a.lo);
  const cb = (BigInt(b.hi) << 32n) | BigInt(b.lo);
  const joined = multModP(x2nModP(lengthB, 3), ca) ^ cb;
  const out = new Crc64();
  out.hi = Number(joined >> 32n);
  out.lo = Number(joined & 0xffffffffn);
  return out;
}

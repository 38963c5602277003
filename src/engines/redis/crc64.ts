/**
 * CRC-64/Jones as Redis uses it (polynomial 0xad93d23594c935a9, reflected in and
 * out, init 0, no final xor): check value of "123456789" is 0xe9c6d914c4b8d9ca.
 * Kept as two 32-bit halves: BigInt per byte would be far too slow for GiB files.
 */
const POLY_HI = 0x95ac9329, POLY_LO = 0xac4bc9b5; // 0xad93d23594c935a9 bit-reflected

const TABLE_HI = new Uint32Array(256);
const TABLE_LO = new Uint32Array(256);
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
  TABLE_HI[i] = hi;
  TABLE_LO[i] = lo;
}

export class Crc64 {
  hi = 0;
  lo = 0;

  update(bytes: Uint8Array): this {
    let hi = this.hi, lo = this.lo;
    for (let i = 0; i < bytes.length; i++) {
      const idx = (lo ^ bytes[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx];
      hi = (hi >>> 8) ^ TABLE_HI[idx];
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
    return this;
  }

  updateByte(byte: number): void {
    const idx = (this.lo ^ byte) & 0xff;
    this.lo = (((this.lo >>> 8) | (this.hi << 24)) ^ TABLE_LO[idx]) >>> 0;
    this.hi = ((this.hi >>> 8) ^ TABLE_HI[idx]) >>> 0;
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

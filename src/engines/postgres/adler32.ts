/**
 * Adler-32 (RFC 1950), the checksum that ends a zlib stream. Pieces compressed on
 * different threads are checksummed apart and joined with adler32Combine, as
 * zlib's adler32_combine does, so no thread has to read every byte.
 */

const BASE = 65521;
/** zlib's bound on bytes summed between two modulos: the sums stay below 2^32 (and small integers to V8). */
const NMAX = 5552;

/** Continues `adler` (1 for a new stream) over `bytes`. */
export function adler32(bytes: Uint8Array, adler = 1): number {
  let a = adler & 0xffff;
  let b = adler >>> 16;
  let i = 0;
  while (i < bytes.length) {
    const stop = Math.min(i + NMAX, bytes.length);
    for (; i < stop; i++) {
      a += bytes[i];
      b += a;
    }
    a %= BASE;
    b %= BASE;
  }
  return ((b << 16) | a) >>> 0;
}

/** The Adler-32 of A followed by B, from A's, B's and B's length. */
export function adler32Combine(adlerA: number, adlerB: number, lengthB: number): number {
  const rem = lengthB % BASE;
  const a1 = adlerA & 0xffff;
  const b1 = adlerA >>> 16;
  const a2 = adlerB & 0xffff;
  const b2 = adlerB >>> 16;
  const a = (a1 + a2 + BASE - 1) % BASE;
  const b = ((rem * a1) % BASE + b1 + b2 + BASE - rem) % BASE;
  return ((b << 16) | a) >>> 0;
}

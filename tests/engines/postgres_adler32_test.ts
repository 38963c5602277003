import assert from "node:assert/strict";
import { adler32, adler32Combine } from "../../src/engines/postgres/adler32.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("adler32: matches the RFC 1950 reference values", () => {
  assert.equal(adler32(new Uint8Array(0)), 1);
  assert.equal(adler32(bytes("Wikipedia")), 0x11e60398);
  assert.equal(adler32(bytes("abc")), 0x024d0127);
});

Deno.test("adler32: continuing over a second part equals the whole", () => {
  const whole = bytes("the quick brown fox jumps over the lazy dog ".repeat(400));
  for (const cut of [0, 1, 5551, 5552, 5553, whole.length - 1, whole.length]) {
    assert.equal(adler32(whole.subarray(cut), adler32(whole.subarray(0, cut))), adler32(whole));
  }
});

Deno.test("adler32: sums stay exact past the modulo window (all 0xff bytes)", () => {
  const ff = new Uint8Array(100_000).fill(0xff);
  // Reference computed byte by byte with the modulo taken every step.
  let a = 1, b = 0;
  for (const x of ff) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  assert.equal(adler32(ff), ((b << 16) | a) >>> 0);
});

Deno.test("adler32Combine: joining pieces' checksums equals the whole's, at every split", () => {
  const whole = new Uint8Array(300);
  for (let i = 0; i < whole.length; i++) whole[i] = (i * 7919 + 13) & 0xff;
  const expected = adler32(whole);
  for (let cut = 0; cut <= whole.length; cut++) {
    const a = adler32(whole.subarray(0, cut));
    const b = adler32(whole.subarray(cut));
    assert.equal(adler32Combine(a, b, whole.length - cut), expected, `split at ${cut}`);
  }
});

Deno.test("adler32Combine: lengths beyond the modulus and of exact multiples of it", () => {
  for (const length of [65520, 65521, 65522, 3 * 65521, 200_003]) {
    const first = new Uint8Array(1000).fill(0xab);
    const second = new Uint8Array(length);
    for (let i = 0; i < length; i++) second[i] = (i * 31) & 0xff;
    const joined = new Uint8Array(first.length + length);
    joined.set(first);
    joined.set(second, first.length);
    assert.equal(adler32Combine(adler32(first), adler32(second), length), adler32(joined));
  }
});

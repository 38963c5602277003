import assert from "node:assert/strict";
import { crc64 } from "../../src/engines/redis/crc64.ts";
import { lzfDecompress } from "../../src/engines/redis/lzf.ts";

Deno.test("crc64 (Jones): the check value of 123456789", () => {
  assert.equal(crc64(new TextEncoder().encode("123456789")).hex(), "e9c6d914c4b8d9ca");
  assert.equal(crc64(new Uint8Array()).hex(), "0000000000000000");
});

Deno.test("crc64: incremental updates equal one pass", () => {
  const data = new Uint8Array(10_000).map((_, i) => (i * 131) & 0xff);
  const one = crc64(data);
  const parts = crc64(data.subarray(0, 3)).update(data.subarray(3, 4000)).update(
    data.subarray(4000),
  );
  assert.equal(parts.hex(), one.hex());
});

Deno.test("lzf: literal runs and back references decode; corrupt input is refused", () => {
  // "aaaaaaaaaa": literal 'a' then a back reference of length 9 at distance 1.
  const compressed = new Uint8Array([0x00, 0x61, 0xe0, 0x00, 0x00]);
  assert.equal(new TextDecoder().decode(lzfDecompress(compressed, 10)), "a".repeat(10));
  assert.throws(() => lzfDecompress(new Uint8Array([0x05, 0x61]), 6), /corrupt/);
});

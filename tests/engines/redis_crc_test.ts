import assert from "node:assert/strict";
import { Crc64, crc64, crc64Combine } from "../../src/engines/redis/crc64.ts";
import { CRC64_WASM } from "../../src/engines/redis/crc64_wasm.ts";
import { lzfDecompress } from "../../src/engines/redis/lzf.ts";
import { dumpPayload, encodeRestore } from "../helpers/dump_payload.ts";
import { encodeCommand } from "../../src/engines/redis/resp.ts";

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

/** Bit by bit with BigInt, straight from the definition: slow, obviously right. */
function referenceCrc(bytes: Uint8Array): string {
  const poly = 0x95ac9329ac4bc9b5n; // 0xad93d23594c935a9 reflected
  let crc = 0n;
  for (const b of bytes) {
    crc ^= BigInt(b);
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc.toString(16).padStart(16, "0");
}

Deno.test("crc64: agrees with the bitwise definition at every length and alignment", () => {
  const data = crypto.getRandomValues(new Uint8Array(96));
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= data.length; end += 1 + (end % 5)) {
      const slice = data.subarray(start, end);
      assert.equal(crc64(slice).hex(), referenceCrc(slice), `bytes ${start}..${end}`);
    }
  }
  const split = crc64(data.subarray(0, 13)).update(data.subarray(13, 50)).update(data.subarray(50));
  assert.equal(split.hex(), referenceCrc(data));
});

Deno.test("crc64: inputs longer than the WebAssembly buffer are checksummed piece by piece", () => {
  const data = new Uint8Array(65536 * 2 + 1000).map((_, i) => (i * 2654435761) >>> 24);
  assert.equal(crc64(data).hex(), referenceCrc(data));
  const bytewise = new Crc64();
  for (let i = 0; i < 100; i++) bytewise.update(data.subarray(i, i + 1)); // below the wasm cutoff
  assert.equal(bytewise.update(data.subarray(100)).hex(), referenceCrc(data));
});

Deno.test("crc64: the embedded WebAssembly is crc64.wat assembled (rerun scripts/build_crc64_wasm.ts)", async () => {
  const { assembleCrc64, crc64WasmSource } = await import("../../scripts/build_crc64_wasm.ts");
  const built = await assembleCrc64();
  assert.deepEqual(built, CRC64_WASM);
  const source = await Deno.readTextFile(
    new URL("../../src/engines/redis/crc64_wasm.ts", import.meta.url),
  );
  assert.equal(source, crc64WasmSource(built));
});

Deno.test("lzf: literal runs and back references decode; corrupt input is refused", () => {
  // "aaaaaaaaaa": literal 'a' then a back reference of length 9 at distance 1.
  const compressed = new Uint8Array([0x00, 0x61, 0xe0, 0x00, 0x00]);
  assert.equal(new TextDecoder().decode(lzfDecompress(compressed, 10)), "a".repeat(10));
  assert.throws(() => lzfDecompress(new Uint8Array([0x05, 0x61]), 6), /corrupt/);
});

Deno.test("encodeRestore: one buffer equal to encoding the command around its DUMP payload", () => {
  const raw = [new Uint8Array([1, 2, 3]), new TextEncoder().encode("value"), new Uint8Array(300)];
  for (const tail of [[], ["REPLACE"], ["REPLACE", "ABSTTL", "IDLETIME", "12"]]) {
    for (const key of ["k", "ключ", new Uint8Array([0, 255, 10])]) {
      const head = ["RESTORE", key, "1700000000000"];
      const expected = encodeCommand([...head, dumpPayload(4, raw, 11), ...tail]);
      assert.deepEqual(encodeRestore(head, 4, raw, 11, tail), expected);
    }
  }
});

Deno.test("crc64: the CRCs of two pieces combine into the CRC of the whole at every split", () => {
  const data = crypto.getRandomValues(new Uint8Array(300));
  for (let split = 0; split <= data.length; split += 1 + (split % 7)) {
    const a = crc64(data.subarray(0, split)), b = crc64(data.subarray(split));
    assert.equal(
      crc64Combine(a, b, data.length - split).hex(),
      crc64(data).hex(),
      `split at ${split}`,
    );
  }
  const empty = crc64(new Uint8Array());
  assert.equal(crc64Combine(empty, empty, 0).hex(), "0000000000000000");
});

Deno.test("crc64: combining scales to pieces of GiB (the length's bits, not its bytes)", () => {
  // x^(8n) mod P computed by squaring must agree with appending n zero bytes.
  const head = crc64(new TextEncoder().encode("123456789"));
  const zeros = new Uint8Array(1 << 20);
  const appended = crc64(new TextEncoder().encode("123456789"));
  for (let i = 0; i < 3; i++) appended.update(zeros);
  assert.equal(crc64Combine(head, crc64(new Uint8Array(3 << 20)), 3 << 20).hex(), appended.hex());
  // Zero bytes have CRC 0 (init 0), so appending L1 zeros then L2 zeros must equal
  // appending L1 + L2 at once: lengths past 32 bits are not truncated.
  const zero = new Crc64();
  const [l1, l2] = [5 * 2 ** 32 + 12345, 2 ** 31 + 7];
  assert.equal(
    crc64Combine(crc64Combine(head, zero, l1), zero, l2).hex(),
    crc64Combine(head, zero, l1 + l2).hex(),
  );
  assert.notEqual(crc64Combine(head, zero, l1).hex(), crc64Combine(head, zero, l1 % 2 ** 32).hex());
});

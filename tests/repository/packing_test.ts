import assert from "node:assert/strict";
import { packingStream } from "../../src/repository/packing.ts";

async function pack(size: number, chunks: Uint8Array[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  await ReadableStream.from(chunks).pipeThrough(packingStream(size)).pipeTo(
    new WritableStream({ write: (c) => void out.push(c) }),
  );
  return out;
}

const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

Deno.test("packing: small views of big buffers become compact buffers of the pack size", async () => {
  const backing = new Uint8Array(65536);
  backing.set(bytes(4096));
  const views = Array.from({ length: 5 }, () => backing.subarray(0, 4096));
  const out = await pack(8192, views);
  assert.deepEqual(out.map((c) => c.length), [8192, 8192, 4096]);
  for (const c of out) assert.deepEqual(c.buffer.byteLength, c.length);
  assert.deepEqual(out[0].subarray(4096), bytes(4096));
});

Deno.test("packing: a chunk larger than the pack size is split, bytes and order kept", async () => {
  const input = [bytes(3), bytes(25, 3), bytes(0), bytes(4, 28)];
  const out = await pack(10, input);
  assert.deepEqual(out.map((c) => c.length), [10, 10, 10, 2]);
  const joined = new Uint8Array(32);
  let at = 0;
  for (const c of out) (joined.set(c, at), at += c.length);
  assert.deepEqual(joined, bytes(32));
});

Deno.test("packing: an empty stream yields nothing, an exact multiple no short tail", async () => {
  assert.deepEqual(await pack(4, []), []);
  assert.deepEqual((await pack(4, [bytes(8)])).map((c) => c.length), [4, 4]);
});

Deno.test("packing: a size that is not a positive integer is refused", () => {
  assert.throws(() => packingStream(0), RangeError);
  assert.throws(() => packingStream(1.5), RangeError);
});

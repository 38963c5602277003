import assert from "node:assert/strict";
import { join } from "node:path";
import { crc64 } from "../../src/engines/redis/crc64.ts";
import { crc64OfFile, crc64OfRange } from "../../src/engines/redis/crc_file.ts";

async function fileOf(bytes: Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cairn-crc-file-" });
  const path = join(dir, "data.bin");
  await Deno.writeFile(path, bytes);
  return path;
}

const data = new Uint8Array(3 * 1024 * 1024 + 4321).map((_, i) => (i * 2654435761) >>> 24);

Deno.test("crc64 of a file: split across 1 to 4 threads, the pieces combine into one pass's CRC", async () => {
  const path = await fileOf(data);
  for (const end of [data.length, data.length - 8, 1 << 20, 5]) {
    const expected = crc64(data.subarray(0, end)).hex();
    for (const threads of [1, 2, 3, 4]) {
      let progress = 0;
      const crc = await crc64OfFile(path, end, { threads, onProgress: (b) => progress = b });
      assert.equal(crc.hex(), expected, `${end} bytes on ${threads} threads`);
      assert.equal(progress, end, "progress ends at the bytes checked");
    }
  }
  assert.equal((await crc64OfFile(path, 0)).hex(), "0000000000000000");
  await Deno.remove(path);
});

Deno.test("crc64 of a file range: reads only [start, end), and a file shorter than the range is an error", async () => {
  const path = await fileOf(data);
  assert.equal(
    (await crc64OfRange(path, 1000, 2_000_000)).hex(),
    crc64(data.subarray(1000, 2_000_000)).hex(),
  );
  await assert.rejects(crc64OfRange(path, 0, data.length + 10), /ends at byte/);
  await assert.rejects(crc64OfFile(path, data.length + 10, { threads: 2 }), /ends at byte/);
  await Deno.remove(path);
});

Deno.test("crc64 of a file: an abort stops this thread's piece and the workers'", async () => {
  const path = await fileOf(data);
  const controller = new AbortController();
  controller.abort(new Error("cancelled by the operator"));
  await assert.rejects(
    crc64OfFile(path, data.length, { threads: 3, signal: controller.signal }),
    /cancelled by the operator/,
  );
  const late = new AbortController();
  const running = crc64OfFile(path, data.length, {
    threads: 2,
    signal: late.signal,
    onProgress: () => late.abort(new Error("cancelled midway")),
  });
  await assert.rejects(running, /cancelled midway/);
  await Deno.remove(path);
});

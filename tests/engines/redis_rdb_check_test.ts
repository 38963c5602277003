import assert from "node:assert/strict";
import { join } from "node:path";
import { checkRdbChecksum, checkRdbFile } from "../../src/engines/redis/rdb_check.ts";
import { fillEverything, startRedis } from "../helpers/redis.ts";

/** The bytes cut into pieces of `size` (the last one shorter). */
function pieces(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.slice(at, at + size));
  return ReadableStream.from(out);
}

async function savedRdb(extra: string[] = []): Promise<Uint8Array> {
  const r = await startRedis(extra);
  try {
    await fillEverything(r);
    await r.cmd("SAVE");
    return await Deno.readFile(join(r.dir, "dump.rdb"));
  } finally {
    await r.stop();
  }
}

Deno.test("rdb checksum: a real RDB checks out whole however it is cut into chunks", async () => {
  const rdb = await savedRdb();
  const expected = { key: "backups/cache/x.rdb", size: rdb.length };
  for (const size of [1, 3, 7, 8, 9, 17, 4096, rdb.length]) {
    assert.deepEqual(
      await checkRdbChecksum(pieces(rdb, size), expected),
      { checksum: "ok", rdbVersion: 10, size: rdb.length },
      `chunks of ${size}`,
    );
  }
});

Deno.test("rdb checksum: a flipped byte anywhere, a truncation or a foreign file is damaged, with what differs", async () => {
  const rdb = await savedRdb();
  const expected = { key: "backups/cache/x.rdb", size: rdb.length };
  for (const at of [9, Math.floor(rdb.length / 2), rdb.length - 9, rdb.length - 1]) {
    const bad = rdb.slice();
    bad[at] ^= 0x04;
    await assert.rejects(
      checkRdbChecksum(pieces(bad, 5), expected),
      (e: Error & { code?: string }) =>
        e.code === "CHECKSUM_MISMATCH" &&
        /x\.rdb is damaged: its bytes give CRC-64 [0-9a-f]{16}, the RDB's stored checksum is [0-9a-f]{16}/
          .test(e.message),
      `byte ${at}`,
    );
  }
  await assert.rejects(
    checkRdbChecksum(pieces(rdb.subarray(0, rdb.length - 100), 4096), expected),
    new RegExp(`it holds ${rdb.length - 100} bytes, the manifest says ${rdb.length}`),
  );
  const foreign = new TextEncoder().encode("PGDMP not an rdb at all");
  await assert.rejects(
    checkRdbChecksum(pieces(foreign, 4), { key: "k", size: foreign.length }),
    /does not start like an RDB file/,
  );
});

Deno.test("rdb checksum: an RDB saved without a checksum says so, for the caller to check another way", async () => {
  const rdb = await savedRdb(["--rdbchecksum", "no"]);
  assert.deepEqual(
    (await checkRdbChecksum(pieces(rdb, 1000), { key: "k", size: rdb.length })).checksum,
    "absent",
  );
});

/** The same bytes as a local file, checked by checkRdbFile. */
async function checkAsFile(
  bytes: Uint8Array,
  expected: { key: string; size: number },
) {
  const dir = await Deno.makeTempDir({ prefix: "cairn-rdb-check-" });
  const path = join(dir, "dump.rdb");
  await Deno.writeFile(path, bytes);
  try {
    return await checkRdbFile(path, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("rdb checksum of a local file: the same verdicts as the stream's, for whole, damaged, short, foreign and unchecksummed files", async () => {
  const rdb = await savedRdb();
  const expected = { key: "backups/cache/x.rdb", size: rdb.length };
  assert.deepEqual(await checkAsFile(rdb, expected), {
    checksum: "ok",
    rdbVersion: 10,
    size: rdb.length,
  });
  for (const at of [0, 9, Math.floor(rdb.length / 2), rdb.length - 9, rdb.length - 1]) {
    const bad = rdb.slice();
    bad[at] ^= 0x04;
    await assert.rejects(
      checkAsFile(bad, expected),
      (e: Error & { code?: string }) =>
        e.code === "CHECKSUM_MISMATCH" && /x\.rdb is damaged/.test(e.message),
      `byte ${at}`,
    );
  }
  await assert.rejects(
    checkAsFile(rdb.subarray(0, rdb.length - 100), expected),
    new RegExp(`it holds ${rdb.length - 100} bytes, the manifest says ${rdb.length}`),
  );
  for (const tiny of [new Uint8Array(), new TextEncoder().encode("REDIS")]) {
    await assert.rejects(
      checkAsFile(tiny, { key: "k", size: tiny.length }),
      /does not start like an RDB file/,
    );
  }
  const unchecked = await savedRdb(["--rdbchecksum", "no"]);
  assert.equal(
    (await checkAsFile(unchecked, { key: "k", size: unchecked.length })).checksum,
    "absent",
  );
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { inspectRdb, RdbReader, T } from "../../src/engines/redis/rdb_reader.ts";
import { dumpPayload } from "../helpers/dump_payload.ts";
import { fillEverything, startRedis } from "../helpers/redis.ts";

const EXPECTED_TYPES: Record<string, number> = {
  "str:small": T.STRING,
  "str:compressible": T.STRING,
  "list:small": T.LIST_QUICKLIST_2,
  "list:big": T.LIST_QUICKLIST_2,
  "list:plain": T.LIST_QUICKLIST_2,
  "set:intset": T.SET_INTSET,
  "set:hashtable": T.SET,
  "zset:listpack": T.ZSET_LISTPACK,
  "zset:skiplist": T.ZSET_2,
  "hash:listpack": T.HASH_LISTPACK,
  "hash:hashtable": T.HASH,
  "hash:bigvalue": T.HASH,
  "stream:s": T.STREAM_LISTPACKS_2,
};

Deno.test("rdb reader: a real dump.rdb with every type and encoding; our payloads equal the server's DUMP", async () => {
  const r = await startRedis(["--maxmemory-policy", "allkeys-lru"]);
  try {
    await fillEverything(r);
    await r.cmd("SAVE");
    const file = await Deno.open(join(r.dir, "dump.rdb"));
    const reader = new RdbReader(file.readable);
    assert.equal(await reader.header(), 10);
    const seen: Record<string, number> = {};
    let keys = 0, functions = 0, idle = 0;
    for (let e = await reader.next(); e; e = await reader.next()) {
      if (e.kind === "function") functions++;
      if (e.kind !== "key") continue;
      keys++;
      if (e.idle !== null) idle++;
      const name = new TextDecoder().decode(e.key);
      seen[name] = e.type;
      const captured = await reader.captureValue(e.type, 64 << 20);
      assert.ok("raw" in captured && captured.raw);
      if (e.db !== 0) continue;
      const ours = dumpPayload(e.type, captured.raw!, reader.version);
      const theirs = await r.cmd("DUMP", e.key) as Uint8Array;
      assert.deepEqual(ours, theirs, `DUMP payload of ${name}`);
    }
    assert.equal(reader.checksum, "ok");
    for (const [name, type] of Object.entries(EXPECTED_TYPES)) {
      assert.equal(seen[name], type, `encoding of ${name}`);
    }
    // Small string sets became listpacks in Redis 7.2; 7.0 keeps them in a hash table.
    assert.ok(seen["set:listpack"] === T.SET_LISTPACK || seen["set:listpack"] === T.SET);
    assert.equal(keys, Number(await r.cmd("DBSIZE")) + 3);
    assert.equal(functions, 1);
    assert.equal(idle, keys, "LRU idle times are read");
  } finally {
    await r.stop();
  }
});

Deno.test("rdb reader: the synchronous fast path reads the same keys and values as the async one", async () => {
  const r = await startRedis(["--maxmemory-policy", "allkeys-lru"]);
  try {
    await fillEverything(r);
    for (let i = 0; i < 300; i++) await r.cmd("SET", `ttl:${i}`, `v${i}`, "PX", String(1e9 + i));
    await r.cmd("SAVE");
    const bytes = await Deno.readFile(join(r.dir, "dump.rdb"));
    const slow: string[] = [];
    const reader = new RdbReader(ReadableStream.from([bytes]));
    await reader.header();
    for (let e = await reader.next(); e; e = await reader.next()) {
      if (e.kind !== "key") continue;
      const captured = await reader.captureValue(e.type, 64 << 20);
      const raw = "raw" in captured ? captured.raw! : [];
      slow.push(entryText(e.db, e.type, e.key, e.expireMs, e.idle, dumpPayload(e.type, raw, 10)));
    }
    assert.equal(reader.checksum, "ok");
    // Any split of the file into chunks: entries inside one chunk take the fast path,
    // the others the async one, and together they must read exactly the same.
    for (const size of [bytes.length, 4096, 333, 17]) {
      const chunks = [];
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.slice(at, at + size));
      const mixed = new RdbReader(ReadableStream.from(chunks));
      await mixed.header();
      const seen: string[] = [];
      let fastKeys = 0;
      for (;;) {
        const f = mixed.tryKeyEntry();
        if (f) {
          fastKeys++;
          seen.push(
            entryText(f.db, f.type, f.key, f.expireMs, f.idle, dumpPayload(f.type, [f.raw], 10)),
          );
          continue;
        }
        const e = await mixed.next();
        if (!e) break;
        if (e.kind !== "key") continue;
        const captured = await mixed.captureValue(e.type, 64 << 20);
        const raw = "raw" in captured ? captured.raw! : [];
        seen.push(entryText(e.db, e.type, e.key, e.expireMs, e.idle, dumpPayload(e.type, raw, 10)));
      }
      assert.equal(mixed.checksum, "ok", `checksum with ${size}-byte chunks`);
      assert.deepEqual(seen, slow, `entries with ${size}-byte chunks`);
      if (size >= 4096) assert.ok(fastKeys > slow.length / 2, `fast path used (${fastKeys})`);
    }
  } finally {
    await r.stop();
  }
});

function entryText(
  db: number,
  type: number,
  key: Uint8Array,
  expireMs: number | null,
  idle: number | null,
  payload: Uint8Array,
): string {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${db} ${type} ${hex(key)} ${expireMs} ${idle} ${hex(payload)}`;
}

Deno.test("rdb reader: a damaged file is refused with the offset and the checksum difference", async () => {
  const r = await startRedis();
  try {
    await r.cmd("SET", "k", "v".repeat(100));
    await r.cmd("SAVE");
    const bytes = await Deno.readFile(join(r.dir, "dump.rdb"));
    bytes[bytes.length - 20] ^= 0x01; // inside the value, before the trailer
    const reader = new RdbReader(ReadableStream.from([bytes]));
    await reader.header();
    await assert.rejects(async () => {
      for (let e = await reader.next(); e; e = await reader.next()) {
        if (e.kind === "key") await reader.skipValue(e.type);
      }
    }, /Invalid RDB at byte \d+: CRC-64 mismatch/);
    await assert.rejects(
      inspectRdb(ReadableStream.from([bytes])),
      /CRC-64 mismatch/,
      "inspect (backup, verify) checks it too",
    );
    const good = await Deno.readFile(join(r.dir, "dump.rdb"));
    assert.equal(
      (await inspectRdb(ReadableStream.from([good.subarray(0, 10), good.subarray(10)]))).checksum,
      "ok",
    );
    const notRdb = new RdbReader(
      ReadableStream.from([new TextEncoder().encode("hello world, not an rdb")]),
    );
    await assert.rejects(notRdb.header(), /not an RDB file/);
  } finally {
    await r.stop();
  }
});

Deno.test("rdb reader: element mode decodes big collections exactly", async () => {
  const r = await startRedis();
  try {
    await r.cmd(
      "EVAL",
      "for i = 1, 5000 do redis.call('ZADD', 'z', i / 7, 'm' .. i) redis.call('HSET', 'h', 'f' .. i, i) end return 1",
      "0",
    );
    await r.cmd("ZADD", "z", "-inf", "low");
    await r.cmd("SAVE");
    const reader = new RdbReader((await Deno.open(join(r.dir, "dump.rdb"))).readable);
    await reader.header();
    for (let e = await reader.next(); e; e = await reader.next()) {
      if (e.kind !== "key") continue;
      const name = new TextDecoder().decode(e.key);
      const captured = await reader.captureValue(e.type, 64 << 20, 100);
      assert.ok("count" in captured, `${name} switches to element mode`);
      let n = 0;
      for await (const el of reader.elements(e.type, captured.count)) {
        n++;
        if (el.op === "score") {
          const score = await r.cmd("ZSCORE", "z", el.member);
          const num = (t: string) => t === "-inf" ? -Infinity : t === "inf" ? Infinity : Number(t);
          assert.equal(num(new TextDecoder().decode(score as Uint8Array)), num(el.score));
        } else if (el.op === "field") {
          assert.deepEqual(await r.cmd("HGET", "h", el.field), el.value);
        }
      }
      assert.equal(n, name === "z" ? 5001 : 5000);
    }
  } finally {
    await r.stop();
  }
});

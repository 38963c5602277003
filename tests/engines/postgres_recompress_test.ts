import assert from "node:assert/strict";
import { constants, deflateRawSync } from "node:zlib";
import { adler32 } from "../../src/engines/postgres/adler32.ts";
import {
  type DeflatePiece,
  recompressArchive,
} from "../../src/engines/postgres/archive_recompress.ts";
import { DeflatePool } from "../../src/engines/postgres/deflate_pool.ts";
import { isCairnError } from "../../src/errors.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { withTempDir } from "../helpers/tmp.ts";

/** Deflates on this thread, as a worker does. */
const inline: DeflatePiece = (plain, headroom) => {
  const deflated = deflateRawSync(plain, { level: 6, finishFlush: constants.Z_FULL_FLUSH });
  const bytes = new Uint8Array(headroom + deflated.length);
  bytes.set(deflated, headroom);
  return Promise.resolve({ bytes, adler: adler32(plain), length: plain.length });
};

async function pgDump(db: string, extra: string[]): Promise<Uint8Array> {
  const out = await new Deno.Command("pg_dump", {
    args: ["-h", PG_HOST, "-p", String(PG_PORT), "-U", "postgres", "-Fc", ...extra, db],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/** pg_restore's SQL script for an archive, without its per-run random \restrict key. */
async function script(dir: string, archive: Uint8Array): Promise<string> {
  const file = `${dir}/${crypto.randomUUID()}.dump`;
  await Deno.writeFile(file, archive);
  const out = await new Deno.Command("pg_restore", {
    args: ["-f", "-", file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `pg_restore: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).replace(/^\\(un)?restrict .*$/gm, "");
}

async function listing(dir: string, archive: Uint8Array): Promise<string> {
  const file = `${dir}/${crypto.randomUUID()}.dump`;
  await Deno.writeFile(file, archive);
  const out = await new Deno.Command("pg_restore", { args: ["-l", file], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout);
}

/** Feeds `archive` in pieces of the given sizes (cycled), as a pipe would deliver it. */
async function* inPieces(archive: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < archive.length; i++) {
    const size = sizes[i % sizes.length];
    yield archive.slice(at, at + size);
    at += size;
  }
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of source) parts.push(part);
  return new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer());
}

async function fixture(sql: import("../helpers/pg.ts").Sql): Promise<void> {
  await sql.unsafe(`
    CREATE SCHEMA "Odd Schema";
    CREATE TABLE public.docs (id int PRIMARY KEY, body text);
    CREATE TABLE public.empty_one (id int);
    CREATE TABLE "Odd Schema"."Mixed" (b bytea);
    INSERT INTO public.docs SELECT g, md5(g::text) || repeat('x', g % 300) FROM generate_series(1, 20000) g;
    INSERT INTO "Odd Schema"."Mixed" VALUES ('\\x00ff10'), (NULL), (decode(repeat('ab', 3000), 'hex'));
    SELECT lo_from_bytea(0, convert_to('a small large object', 'UTF8'));
    SELECT lo_from_bytea(0, decode(repeat('cd', 70000), 'hex'));
    SELECT lo_from_bytea(0, ''::bytea);
  `);
}

Deno.test("recompress: an uncompressed archive becomes one pg_restore reads as the same dump, however the pipe splits it", async () => {
  await withDatabase(async (db, sql) => {
    await fixture(sql);
    await withTempDir(async (dir) => {
      const plain = await pgDump(db, ["--compress=0"]);
      const expected = await script(dir, plain);
      assert.match(expected, /COPY public\.docs/);
      for (
        const [sizes, pieceSize] of [
          [[65536], 1024 * 1024],
          [[1, 2, 3, 4093], 4096],
          [[7, 3, 1000, 2], 100],
          [[plain.length], 37],
        ] as const
      ) {
        const out = await collect(
          recompressArchive(inPieces(plain, [...sizes]), inline, {
            level: 6,
            inFlight: 4,
            pieceSize,
          }),
        );
        assert.equal(
          await script(dir, out),
          expected,
          `input split ${sizes.join("/")}, pieces of ${pieceSize}`,
        );
        assert.match(await listing(dir, out), /Compression: 6/);
        if (pieceSize >= 4096) assert.ok(out.length < plain.length / 3, "the data is compressed");
      }
    });
  });
});

Deno.test("recompress: worker threads give the same archive contents as pg_dump's own compression", async () => {
  await withDatabase(async (db, sql) => {
    await fixture(sql);
    await withTempDir(async (dir) => {
      const plain = await pgDump(db, ["--compress=0"]);
      const own = await pgDump(db, []);
      const pool = new DeflatePool({ level: 6, threads: 3 });
      try {
        const out = await collect(
          recompressArchive(inPieces(plain, [65536]), (p, room) => pool.deflate(p, room), {
            level: 6,
            inFlight: 6,
            pieceSize: 8192,
          }),
        );
        assert.equal(await script(dir, out), await script(dir, own));
        // Within a few percent of pg_dump's own size: the pieces lose little to restarts.
        assert.ok(out.length < own.length * 1.1, `${out.length} vs pg_dump's ${own.length}`);
      } finally {
        pool.close();
      }
    });
  });
});

Deno.test("recompress: a truncated, foreign or already compressed archive is refused with a clear error", async () => {
  await withDatabase(async (db, sql) => {
    await fixture(sql);
    const plain = await pgDump(db, ["--compress=0"]);
    const expectFailure = async (input: Uint8Array, pattern: RegExp) => {
      await assert.rejects(
        collect(recompressArchive(inPieces(input, [4096]), inline, { level: 6, inFlight: 2 })),
        (error: unknown) => {
          assert.ok(isCairnError(error, "SOURCE_UNAVAILABLE"), String(error));
          assert.match((error as Error).message, pattern);
          return true;
        },
      );
    };
    await expectFailure(plain.slice(0, plain.length - 10), /ended inside a data block/);
    await expectFailure(plain.slice(0, 200), /ended inside its header or TOC/);
    await expectFailure(new TextEncoder().encode("-- a plain SQL dump\n".repeat(50)), /PGDMP/);
    await expectFailure(await pgDump(db, []), /already compressed/);
    const wrongVersion = plain.slice();
    wrongVersion[6] = 15; // archive 1.15 (pg_dump 16) has another header layout
    await expectFailure(wrongVersion, /archive version 1\.15/);
  });
});

import assert from "node:assert/strict";
import { sampleCompressionRatio } from "../../src/engines/postgres/catalog.ts";
import type { Sql as EngineSql } from "../../src/engines/postgres/conn.ts";
import { withDatabase } from "../helpers/pg.ts";

Deno.test("sampled compression ratio: random text shrinks a little, padding a lot; no tables, or one it may not read, give none", async () => {
  await withDatabase(async (_db, sql) => {
    // As in a backup: on a reserved connection, inside the snapshot transaction,
    // which a failing sample must not abort.
    const inTransaction = async <T>(
      fn: (tx: EngineSql) => Promise<T>,
      role?: string,
    ): Promise<{ value: T; alive: boolean }> => {
      const tx = await sql.reserve();
      try {
        await tx`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
        if (role) await tx.unsafe(`SET LOCAL ROLE ${role}`);
        const value = await fn(tx as unknown as EngineSql);
        const [{ ok }] = await tx`SELECT true AS ok`;
        await tx`COMMIT`;
        return { value, alive: ok };
      } finally {
        tx.release();
      }
    };
    const ratio = async () => (await inTransaction(sampleCompressionRatio)).value;
    assert.equal(await ratio(), null, "no tables: nothing to sample");
    await sql.unsafe(`
      CREATE TABLE noise (id int, body text);
      INSERT INTO noise SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 20000) g`);
    const noisy = await ratio();
    assert.ok(noisy !== null && noisy > 1.2 && noisy < 4, `random hex: ${noisy}`);
    await sql.unsafe(`
      CREATE TABLE padded (id int, filler char(500));
      INSERT INTO padded SELECT g, '' FROM generate_series(1, 40000) g`);
    const mixed = await ratio();
    // The padded table is the bigger one, and its rows are almost all blanks.
    assert.ok(mixed !== null && mixed > noisy!, `with padding: ${mixed} vs ${noisy}`);
    await sql.unsafe(`DROP TABLE noise`);
    const padded = await ratio();
    assert.ok(padded !== null && padded > 20, `padding alone: ${padded}`);
    // A table the role may not read: no ratio, and the transaction goes on.
    await sql.unsafe(`
      DO $$ BEGIN CREATE ROLE cairn_sample_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
      GRANT SELECT ON padded TO cairn_sample_reader;
      CREATE TABLE secret AS SELECT g, repeat('s', 900) AS v FROM generate_series(1, 50000) g;`);
    const asReader = await inTransaction(sampleCompressionRatio, "cairn_sample_reader");
    assert.deepEqual(asReader, { value: null, alive: true });
  });
});

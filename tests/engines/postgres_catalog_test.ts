import assert from "node:assert/strict";
import { sampleCompressionRatio } from "../../src/engines/postgres/catalog.ts";
import type { Sql as EngineSql } from "../../src/engines/postgres/conn.ts";
import { withDatabase } from "../helpers/pg.ts";

Deno.test("sampled compression ratio: random text shrinks a little, padding a lot, an empty database not at all", async () => {
  await withDatabase(async (_db, sql) => {
    const ratio = () => sampleCompressionRatio(sql as unknown as EngineSql);
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
  });
});

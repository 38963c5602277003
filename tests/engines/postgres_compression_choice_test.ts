import assert from "node:assert/strict";
import {
  chooseCompression,
  type CompressionInputs,
  FAST_ZLIB_RATIO,
  parseCompressionSetting,
  SAMPLE_ABOVE_BYTES,
  wantsSample,
} from "../../src/engines/postgres/compression_choice.ts";

const big: CompressionInputs = {
  setting: "auto",
  dumpMajor: 15,
  cores: 2,
  databaseBytes: 2 * 2 ** 30,
  sampleRatio: 2.1,
};

Deno.test("compression choice: a big database of poorly compressible data is compressed by cairn", () => {
  const choice = chooseCompression(big);
  assert.equal(choice.by, "cairn");
  assert.match(choice.why, /sampled rows compress 2\.1x: zlib is the bottleneck/);
});

Deno.test("compression choice: data that compresses well is left to pg_dump, from the threshold up", () => {
  assert.equal(chooseCompression({ ...big, sampleRatio: FAST_ZLIB_RATIO - 0.01 }).by, "cairn");
  assert.equal(chooseCompression({ ...big, sampleRatio: FAST_ZLIB_RATIO }).by, "pg_dump");
  const choice = chooseCompression({ ...big, sampleRatio: 36 });
  assert.equal(choice.by, "pg_dump");
  assert.match(choice.why, /36\.0x: pg_dump keeps pace/);
});

Deno.test("compression choice: small or unsampled databases, and one core, stay with pg_dump", () => {
  assert.equal(chooseCompression({ ...big, databaseBytes: SAMPLE_ABOVE_BYTES - 1 }).by, "pg_dump");
  assert.equal(chooseCompression({ ...big, sampleRatio: null }).by, "pg_dump");
  assert.equal(chooseCompression({ ...big, cores: 1 }).by, "pg_dump");
});

Deno.test("compression choice: pg_dump newer than 15 always compresses itself, even when told otherwise", () => {
  for (const setting of ["auto", "cairn", "pg_dump"] as const) {
    const choice = chooseCompression({ ...big, setting, dumpMajor: 16 });
    assert.equal(choice.by, "pg_dump", setting);
  }
  assert.match(
    chooseCompression({ ...big, dumpMajor: 17 }).why,
    /pg_dump 17 writes an archive layout/,
  );
});

Deno.test("compression choice: CAIRN_PG_COMPRESSION overrides the sample either way", () => {
  assert.equal(chooseCompression({ ...big, setting: "pg_dump" }).by, "pg_dump");
  const forced = chooseCompression({
    ...big,
    setting: "cairn",
    cores: 1,
    databaseBytes: 1,
    sampleRatio: null,
  });
  assert.deepEqual(forced, { by: "cairn", why: "CAIRN_PG_COMPRESSION=cairn" });
});

Deno.test("compression setting: auto by default, anything else unknown is an error naming the value", () => {
  assert.equal(parseCompressionSetting(undefined), "auto");
  assert.equal(parseCompressionSetting(""), "auto");
  assert.equal(parseCompressionSetting("cairn"), "cairn");
  assert.equal(parseCompressionSetting("pg_dump"), "pg_dump");
  assert.throws(() => parseCompressionSetting("gzip"), /auto, cairn or pg_dump, not "gzip"/);
});

Deno.test("compression choice: a sample is taken exactly when the choice would use it", () => {
  const { sampleRatio: _, ...base } = big;
  assert.equal(wantsSample(base), true);
  assert.equal(wantsSample({ ...base, databaseBytes: SAMPLE_ABOVE_BYTES - 1 }), false);
  assert.equal(wantsSample({ ...base, cores: 1 }), false);
  assert.equal(wantsSample({ ...base, dumpMajor: 16 }), false);
  assert.equal(wantsSample({ ...base, setting: "cairn" }), false);
  assert.equal(wantsSample({ ...base, setting: "pg_dump" }), false);
  // Whatever the sample says only matters when one was wanted.
  for (const setting of ["cairn", "pg_dump"] as const) {
    for (const sampleRatio of [1, 100, null]) {
      const a = chooseCompression({ ...big, setting, sampleRatio });
      const b = chooseCompression({ ...big, setting, sampleRatio: 2 });
      assert.deepEqual(a, b);
    }
  }
});

import assert from "node:assert/strict";
import { massDelete } from "../../src/engines/s3mirror/guard.ts";
import { versionKey, versionSha } from "../../src/engines/s3mirror/versions.ts";

const keys = (n: number) => new Set(Array.from({ length: n }, (_, i) => `k${i}`));

Deno.test("mass-delete guard: every count of 100 against every limit; exactly the limit passes", () => {
  const previous = keys(100);
  for (let gone = 0; gone <= 100; gone++) {
    const listed = new Set([...previous].slice(gone));
    for (const limit of [0, 1, 49, 50, 51, 99, 100]) {
      const d = massDelete(previous, listed, limit, false);
      assert.equal(d.deleted, gone);
      assert.equal(d.previous, 100);
      assert.equal(d.refused, limit < 100 && gone > limit, `${gone} gone, limit ${limit}`);
      assert.equal(massDelete(previous, listed, limit, true).refused, false, "force passes");
    }
  }
});

Deno.test("mass-delete guard: 51% fires and 49% does not at the default 50; a first run never fires", () => {
  assert.equal(massDelete(keys(100), new Set([...keys(100)].slice(51)), 50, false).refused, true);
  assert.equal(massDelete(keys(100), new Set([...keys(100)].slice(49)), 50, false).refused, false);
  assert.equal(massDelete(keys(3), new Set(["k0"]), 50, false).refused, true, "2 of 3 is 66%");
  assert.equal(massDelete(keys(2), new Set(["k0"]), 50, false).refused, false, "1 of 2 is 50%");
  assert.equal(massDelete(new Set(), new Set(), 0, false).refused, false);
  assert.equal(massDelete(keys(10), new Set(["new"]), 50, false).deleted, 10);
});

Deno.test("version store names: fs inside the client's area under %versions, S3 beside mirrors-escaped", () => {
  const h = "ab" + "0".repeat(62);
  assert.equal(versionKey("fs", "assets", h), `mirrors/assets/%versions/ab/${h}`);
  assert.equal(versionKey("s3", "assets", h), `mirrors-versions/assets/ab/${h}`);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/ab/${h}`), h);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/cd/${h}`), null);
  assert.equal(versionSha("fs", "assets", `mirrors/assets/%versions/ab/${h}.tmp`), null);
  assert.equal(versionSha("s3", "other", `mirrors-versions/assets/ab/${h}`), null);
  assert.throws(() => versionKey("fs", "assets", "AB" + "0".repeat(62)), /Not a sha256/);
  assert.throws(() => versionKey("fs", "assets", "../x"), /Not a sha256/);
});

import assert from "node:assert/strict";
import {
  backupKey,
  formatStamp,
  isMirrorListingKey,
  keyProblem,
  manifestKey,
  mirrorRefsKey,
  parseKey,
  parseStamp,
} from "../../src/repository/keys.ts";
import { CairnError } from "../../src/errors.ts";
import { assertSafeKey } from "../../src/repository/paths.ts";

const VALID = "backups/app_db/20261121T020000000Z-daily.dump";

Deno.test("stamps are UTC YYYYMMDDTHHMMSSmmmZ and round-trip", () => {
  const d = new Date("2026-11-21T02:00:00.123Z");
  assert.equal(formatStamp(d), "20261121T020000123Z");
  assert.equal(parseStamp("20261121T020000123Z")?.getTime(), d.getTime());
  assert.equal(parseStamp("20261341T020000123Z"), null, "month 13 is not a date");
});

Deno.test("a backup key is built and parsed per the grammar", () => {
  const key = backupKey("app_db", new Date("2026-11-21T02:00:00Z"), "daily", "dump");
  assert.equal(key, VALID);
  const p = parseKey(key);
  assert.deepEqual([p.client, p.label, p.ext], ["app_db", "daily", "dump"]);
  assert.equal(parseKey("backups/u/20261121T020000000Z-my-label_2.tar.gz").ext, "tar.gz");
  assert.equal(parseKey("backups/s/20261121T020000000Z-x.mirror.json").ext, "mirror.json");
  assert.equal(manifestKey(VALID), VALID + ".manifest.json");
});

Deno.test("keys that could leave the repository or break the grammar are rejected", () => {
  const bad = [
    "",
    "/backups/app_db/20261121T020000000Z-daily.dump",
    "backups/../etc/20261121T020000000Z-daily.dump",
    "backups/app_db/../../20261121T020000000Z-daily.dump",
    "backups/app_db/20261121T020000000Z-daily.dump\0",
    "backups\\app_db\\20261121T020000000Z-daily.dump",
    "backups/app_db/./20261121T020000000Z-daily.dump",
    "backups/APP/20261121T020000000Z-daily.dump",
    "backups/app_db/20261121T020000000Z-daily.exe",
    "backups/app_db/20261121T020000000Z-.dump",
    "backups/app_db/2026112T020000000Z-daily.dump",
    "backups/app_db/20261121T020000000Z-daily.dump.manifest.json",
    "mirrors/app_db/20261121T020000000Z-daily.dump",
    "backups/app_db/sub/20261121T020000000Z-daily.dump",
  ];
  for (const key of bad) {
    assert.notEqual(keyProblem(key), null, `should reject ${JSON.stringify(key)}`);
    assert.throws(() => parseKey(key), (e) => e instanceof CairnError && e.code === "INVALID_KEY");
  }
  assert.match(keyProblem("backups/../x")!, /'\.\.'/);
  assert.match(keyProblem("/x")!, /starts with/);
  assert.match(keyProblem("a\0b")!, /NUL/);
});

Deno.test("invalid labels and client names never make a key", () => {
  assert.throws(() => backupKey("app", new Date(), "Bad Label", "dump"), CairnError);
  assert.throws(() => backupKey("../x", new Date(), "ok", "dump"), CairnError);
  assert.throws(() => backupKey("app", new Date(), "x".repeat(41), "dump"), CairnError);
});

Deno.test("any repository key must stay inside", () => {
  for (const k of ["", "/a", "a/../b", "a//b", "a/./b", "a\0", "a\\b", ".."]) {
    assert.throws(() => assertSafeKey(k), CairnError, k);
  }
  assertSafeKey("mirrors/c/some key+with%odd/ünïcode");
});

Deno.test("chained extensions: every base with every compression and encryption, and nothing else", () => {
  const bases = ["dump", "rdb", "sqlite", "tar", "mirror.json"];
  const compressions = ["", ".zst", ".gz"];
  const encryptions = ["", ".age"];
  let valid = 0;
  for (const base of bases) {
    for (const c of compressions) {
      for (const e of encryptions) {
        const ext = base + c + e;
        const p = parseKey(`backups/x/20261121T020000000Z-l.${ext}`);
        assert.deepEqual(
          [p.ext, p.base, p.compression, p.encrypted],
          [ext, base, c === "" ? null : c.slice(1), e === ".age"],
        );
        valid++;
      }
    }
  }
  assert.equal(valid, 30);
  // Wrong order, doubled, unknown or bare suffixes: refused, with the grammar in words.
  for (
    const ext of [
      "tar.age.zst",
      "dump.zst.zst",
      "rdb.gz.zst",
      "sqlite.age.age",
      "zst",
      "age",
      "tar.xz",
      "tar.zstd",
      "dump.ZST",
      "mirror.json.zst.age.gz",
      "tar.tar",
    ]
  ) {
    const problem = keyProblem(`backups/x/20261121T020000000Z-l.${ext}`);
    assert.match(problem ?? "", /then optionally \.zst or \.gz, then optionally \.age/, ext);
  }
  // The release before the pipeline wrote .tar.gz: it is "tar" gzipped.
  const legacy = parseKey("backups/u/20261121T020000000Z-v1.tar.gz");
  assert.deepEqual([legacy.base, legacy.compression, legacy.encrypted], ["tar", "gz", false]);
  assert.equal(
    backupKey("x", new Date("2026-11-21T02:00:00Z"), "l", "rdb.zst.age"),
    "backups/x/20261121T020000000Z-l.rdb.zst.age",
  );
  assert.throws(() => backupKey("x", new Date(), "l", "rdb.age.zst"), CairnError);
});

Deno.test("a mirror run's reference list: one per listing, whatever its chained extension", () => {
  for (const ext of ["mirror.json", "mirror.json.zst", "mirror.json.gz", "mirror.json.zst.age"]) {
    const key = `backups/assets/20261121T020000000Z-hourly.${ext}`;
    assert.ok(isMirrorListingKey(key), ext);
    assert.equal(mirrorRefsKey(key), "state/mirror-refs/assets/20261121T020000000Z-hourly.json");
  }
  for (
    const key of [
      "backups/assets/20261121T020000000Z-hourly.tar.zst",
      "backups/assets/20261121T020000000Z-hourly.mirror.json.manifest.json",
      "backups/assets/20261121T020000000Z-hourly.mirror.json.age.zst",
      "mirrors/assets/x.mirror.json",
    ]
  ) {
    assert.equal(isMirrorListingKey(key), false, key);
    assert.throws(() => mirrorRefsKey(key), CairnError, key);
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { keyLines, loadKeys, requireIdentityFor } from "../../src/pipeline/identity.ts";
import {
  chainedExtension,
  legacyTransforms,
  plannedTransforms,
} from "../../src/pipeline/transforms.ts";
import { parseConfig } from "../../src/config/load.ts";
import { CairnError } from "../../src/errors.ts";
import { withTempDir } from "../helpers/tmp.ts";

Deno.test("key files: comments and blanks skipped; recipients from config and file, deduplicated", async () => {
  assert.deepEqual(keyLines("# created\n\n  age1x  \r\n#c\nage1y\n"), ["age1x", "age1y"]);
  await withTempDir(async (dir) => {
    const id = await generateIdentity();
    const r = await identityToRecipient(id);
    const other = await identityToRecipient(await generateIdentity());
    await Deno.writeTextFile(join(dir, "r.txt"), `# team\n${other}\n${r}\n`);
    await Deno.writeTextFile(join(dir, "k.txt"), `# key\n${id}\n`);
    const keys = await loadKeys({
      recipients: [r],
      recipients_file: join(dir, "r.txt"),
      identity_file: join(dir, "k.txt"),
    });
    assert.deepEqual(keys.recipients, [r, other]);
    assert.deepEqual(keys.identities, [id]);
    await requireIdentityFor([other, r], keys); // one match is enough
    await assert.rejects(
      loadKeys({ recipients: ["age1notakey"] }),
      (e) =>
        e instanceof CairnError && /Not an age X25519 recipient: "age1notakey"/.test(e.message),
    );
    await Deno.writeTextFile(join(dir, "bad.txt"), "AGE-SECRET-KEY-1NOPE\n");
    await assert.rejects(
      loadKeys({ recipients: [r], identity_file: join(dir, "bad.txt") }),
      (e) => e instanceof CairnError && e.message.includes(join(dir, "bad.txt")),
    );
    await assert.rejects(
      loadKeys({ recipients: [r], recipients_file: join(dir, "missing.txt") }),
      (e) =>
        e instanceof CairnError && e.code === "CONFIG_INVALID" && e.message.includes("missing.txt"),
    );
  });
});

Deno.test("transforms: planned in order, named by chained extensions; format-1 keys map to theirs", () => {
  const r = "age1" + "q".repeat(58);
  assert.deepEqual(plannedTransforms({ compression: "zstd", recipients: [] }), [{
    name: "zstd",
    level: 3,
  }]);
  assert.deepEqual(plannedTransforms({ compression: "gzip", recipients: [] }), [{
    name: "gzip",
    level: 6,
  }]);
  assert.deepEqual(plannedTransforms({ compression: "none", recipients: [] }), []);
  const both = plannedTransforms({ compression: "zstd", level: 9, recipients: [r] });
  assert.deepEqual(both, [{ name: "zstd", level: 9 }, { name: "age", recipients: [r] }]);
  assert.equal(chainedExtension("rdb", both), "rdb.zst.age");
  assert.equal(chainedExtension("tar", []), "tar");
  assert.equal(chainedExtension("dump", [{ name: "age", recipients: [r] }]), "dump.age");
  assert.deepEqual(legacyTransforms("tar.gz"), [{ name: "gzip", level: 6 }]);
  for (const ext of ["dump", "rdb", "sqlite", "mirror.json"]) {
    assert.deepEqual(legacyTransforms(ext), []);
  }
});

Deno.test("config: compression per repository and client; gzip levels stop at 9; encryption needs recipients", () => {
  const base = { repository: { kind: "fs", compression: "gzip", compression_level: 9 } };
  assert.equal(parseConfig(JSON.stringify(base)).repository.compression, "gzip");
  assert.throws(
    () =>
      parseConfig(
        JSON.stringify({ repository: { kind: "fs", compression: "gzip", compression_level: 10 } }),
      ),
    /gzip levels are 1-9/,
  );
  assert.throws(
    () => parseConfig(JSON.stringify({ repository: { kind: "fs", compression: "xz" } })),
    /compression/,
  );
  assert.throws(
    () =>
      parseConfig(
        JSON.stringify({ repository: { kind: "fs", encryption: { identity_file: "/k" } } }),
      ),
    /encryption needs recipients or a recipients_file/,
  );
  const c = parseConfig(JSON.stringify({
    clients: { a: { kind: "sqlite", path: "/x.db", compression: "none" } },
  }));
  assert.equal((c.clients.a as { compression?: string }).compression, "none");
});

Deno.test("an age identity (secret key) listed as a recipient is refused without being repeated: in the config (config check fails) and in a recipients_file", async () => {
  const id = await generateIdentity();
  const r = await identityToRecipient(id);
  let problems: string[] = [];
  try {
    parseConfig(
      `repository: {kind: fs, path: /r, encryption: {recipients: ["${id}", "age1notakey"]}}\n`,
    );
  } catch (error) {
    problems = [(error as Error).message];
  }
  const text = problems.join("\n");
  assert.match(
    text,
    /repository\.encryption\.recipients\.0: an age identity \(secret key\), not a recipient: list its public key \(age-keygen -y\)/,
  );
  assert.match(
    text,
    /repository\.encryption\.recipients\.1: not an age X25519 recipient \(age1 then 58 characters\)/,
  );
  assert.ok(!text.includes(id.slice(16)), text);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "r.txt"), `${r}\n${id}\n`);
    await assert.rejects(
      loadKeys({ recipients_file: join(dir, "r.txt") }),
      (e) =>
        e instanceof CairnError && e.code === "CONFIG_INVALID" &&
        /an age identity \(secret key\) is listed as a recipient/i.test(e.message) &&
        !e.message.includes(id.slice(16)),
    );
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { siblingTemp, siblingTempOwner, sweepSiblingTemps } from "../../src/engines/fs_util.ts";
import { initProcessId, ownerTag } from "../../src/io/process_id.ts";
import {
  cairn,
  CAIRN_PERMISSIONS,
  MAIN,
  randomBytes,
  sha256File,
  withTempDir,
  writeConfig,
} from "../helpers/tmp.ts";

/** The `<pid>-<start>` of a process that has exited and been reaped. */
async function deadOwner(): Promise<string> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return `${child.pid}-1`;
}

Deno.test("sibling temp names carry their owner, and only those names parse", () => {
  const name = siblingTemp("/data/db.sqlite", "restore-42").split("/").pop()!;
  assert.equal(siblingTempOwner("db.sqlite", name), ownerTag());
  assert.equal(
    siblingTempOwner("db.sqlite", ".db.sqlite.cairn-restore-7-123-456-0a1b2c3d"),
    "123-456",
  );
  assert.equal(siblingTempOwner("db.sqlite", ".db.sqlite.cairn-restore-123-x-0a1b2c3d"), "123-x");
  // Another target's sibling, the old release's owner-less name, and plain files are not ours.
  assert.equal(siblingTempOwner("db", ".db.sqlite.cairn-restore-123-456-0a1b2c3d"), null);
  assert.equal(siblingTempOwner("db.sqlite", ".db.sqlite.cairn-restore-0a1b2c3d"), null);
  assert.equal(siblingTempOwner("db.sqlite", "db.sqlite"), null);
  assert.equal(siblingTempOwner("db.sqlite", ".db.sqlite.cairn-restore-12-34-NOTHEX12"), null);
});

Deno.test("the sweep removes a dead owner's leftovers beside a target and keeps live and foreign ones", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const target = join(dir, "restored");
    const dead = join(dir, `.restored.cairn-restore-${await deadOwner()}-0a1b2c3d`);
    const live = siblingTemp(target, "restore");
    const legacy = join(dir, ".restored.cairn-restore-0a1b2c3d");
    const other = join(dir, `.elsewhere.cairn-restore-${await deadOwner()}-0a1b2c3d`);
    for (const d of [dead, live, legacy, other]) {
      await Deno.mkdir(join(d, "sub"), { recursive: true });
    }
    assert.deepEqual(await sweepSiblingTemps(target), [dead]);
    const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(left, [live, legacy, other].map((p) => p.split("/").pop()!).sort());
    assert.deepEqual(await sweepSiblingTemps(join(dir, "missing", "x")), []);
  });
});

Deno.test({
  name:
    "a directory restore into a new path killed part way: the next restore removes its staging sibling",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      // Incompressible data, so extraction takes long enough to be killed inside it.
      for (let i = 0; i < 6; i++) await Deno.writeFile(join(src, `f${i}`), randomBytes(24 << 20));
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src, compression: "none" } },
      });
      const backup = await cairn(["backup", "files", "--json", "--config", config]);
      assert.equal(backup.code, 0, backup.stderr);
      const key = JSON.parse(backup.stdout).key as string;
      const target = join(dir, "out", "restored");
      await Deno.mkdir(join(dir, "out"));

      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...CAIRN_PERMISSIONS,
          MAIN,
          "restore",
          key,
          "--target",
          target,
          "--config",
          config,
        ],
        env: { NO_COLOR: "1" },
        stdout: "null",
        stderr: "null",
      }).spawn();
      const siblings = async () =>
        (await Array.fromAsync(Deno.readDir(join(dir, "out")))).map((e) => e.name)
          .filter((n) => n.startsWith(".restored.cairn-restore-"));
      const deadline = Date.now() + 60_000;
      let seen: string[] = [];
      while ((seen = await siblings()).length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      child.kill("SIGKILL");
      await child.status;
      assert.equal(seen.length, 1, "the restore's staging sibling appeared");
      assert.deepEqual(await siblings(), seen, "the kill left the staging sibling behind");
      await Deno.stat(target).then(
        () => assert.fail("the killed restore must not have published the target"),
        () => {},
      );

      const again = await cairn(["restore", key, "--target", target, "--config", config]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await siblings(), []);
      assert.deepEqual(
        (await Array.fromAsync(Deno.readDir(join(dir, "out")))).map((e) => e.name),
        ["restored"],
      );
      for (let i = 0; i < 6; i++) {
        assert.equal(await sha256File(join(target, `f${i}`)), await sha256File(join(src, `f${i}`)));
      }
    });
  },
});

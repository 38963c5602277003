import assert from "node:assert/strict";
import { join } from "node:path";
import { recoverInterrupted, restoreTag } from "../../src/engines/directory/interrupted.ts";
import { initProcessId } from "../../src/io/process_id.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";

/** A tag whose process is gone: the pid of a child that has exited and been reaped. */
async function deadTag(job: number): Promise<string> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return `${child.pid}-1-${job}-deadbeef`;
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    out[e.name] = e.isDirectory ? "<dir>" : await Deno.readTextFile(join(dir, e.name));
  }
  return out;
}

async function put(dir: string, files: Record<string, string>) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
}

Deno.test("interrupted restore: killed while the old entries moved out, the directory gets them all back", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const tag = await deadTag(7);
    await put(dir, { a: "old a" });
    await put(join(dir, `.cairn-old-${tag}`), { b: "old b" });
    await put(join(dir, `.cairn-restore-${tag}`), { a: "new a", b: "new b", c: "new c" });
    const report = await recoverInterrupted(dir);
    assert.deepEqual(report, { live: [], recovered: [tag] });
    assert.deepEqual(await tree(dir), { a: "old a", b: "old b" });
  });
});

Deno.test("interrupted restore: killed while the new entries moved in, the new ones go and the old come back", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const tag = await deadTag(8);
    await put(dir, { a: "new a", b: "new b" });
    await put(join(dir, `.cairn-old-${tag}`), { a: "old a", b: "old b", z: "old z" });
    await put(join(dir, `.cairn-incoming-${tag}`), { c: "new c" });
    await recoverInterrupted(dir);
    assert.deepEqual(await tree(dir), { a: "old a", b: "old b", z: "old z" });
  });
});

Deno.test("interrupted restore: killed after the swap, only the replaced contents are removed", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const tag = await deadTag(9);
    await put(dir, { a: "new a" });
    await put(join(dir, `.cairn-done-${tag}`), { a: "old a" });
    await recoverInterrupted(dir);
    assert.deepEqual(await tree(dir), { a: "new a" });
  });
});

Deno.test("interrupted restore: a restore still running is reported live and left alone", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const tag = restoreTag(3);
    await put(join(dir, `.cairn-old-${tag}`), { a: "old a" });
    assert.deepEqual(await recoverInterrupted(dir), { live: [tag], recovered: [] });
    assert.deepEqual(Object.keys(await tree(dir)), [`.cairn-old-${tag}`]);
  });
});

Deno.test("interrupted restore: a backup of the directory first puts it back, instead of storing 0 files", async () => {
  await initProcessId();
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    const tag = await deadTag(11);
    await put(src, {});
    await put(join(src, `.cairn-old-${tag}`), { a: "alpha", b: "bravo" });
    await put(join(src, `.cairn-restore-${tag}`), { a: "new" });
    const config = await writeConfig(dir, { clients: { files: { kind: "directory", path: src } } });
    const backup = await cairn(["backup", "files", "--json", "--config", config]);
    assert.equal(backup.code, 0, backup.stderr);
    assert.equal(JSON.parse(backup.stdout).result.files, 2);
    assert.deepEqual(await tree(src), { a: "alpha", b: "bravo" });
  });
});

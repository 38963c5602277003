import assert from "node:assert/strict";
import { join } from "node:path";
import { manifestKey } from "../../src/repository/keys.ts";
import { readManifest } from "../../src/repository/manifest.ts";
import { makeTree, sha256File, withTempDir } from "../helpers/tmp.ts";
import { run, testServices } from "../helpers/services.ts";

async function treeListing(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string) {
    for await (const e of Deno.readDir(join(root, rel))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const info = await Deno.lstat(join(root, r));
      if (info.isSymlink) out.push(`L ${r} -> ${await Deno.readLink(join(root, r))}`);
      else if (info.isDirectory) {
        out.push(`D ${r} ${(info.mode! & 0o7777).toString(8)}`);
        await walk(r);
      } else {out.push(
          `F ${r} ${(info.mode! & 0o7777).toString(8)} ${info.size} ${
            Math.floor(info.mtime!.getTime() / 1000)
          } ${await sha256File(join(root, r))}`,
        );}
    }
  }
  await walk("");
  return out.sort();
}

Deno.test("directory: backup -> verify -> restore reproduces files, modes, mtimes and symlinks", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    try {
      const b = await run(services, { kind: "backup", client_name: "files", label: "nightly" });
      assert.equal(b.status, "completed", b.error ?? "");
      const r = b.result as Record<string, number | string>;
      assert.match(String(r.key), /^backups\/files\/\d{8}T\d{9}Z-nightly\.tar\.zst$/);
      assert.equal(r.files, 6);
      assert.equal(r.bytes, 6 + 6000 + 70000 + 8 + 10);
      const manifest = await readManifest(services.repository, String(r.key));
      assert.equal(manifest.sha256, r.sha256);
      assert.equal(manifest.job_id, b.id);
      assert.equal(manifest.kind, "directory");
      assert.equal((manifest.facts as { symlinks: number }).symlinks, 2);
      assert.equal(
        await sha256File(join(dir, "repo", String(r.key))),
        r.sha256,
        "sha256 is of the stored bytes",
      );

      const v = await run(services, { kind: "verify", client_name: "files", key: String(r.key) });
      assert.equal(v.status, "completed", v.error ?? "");

      const target = join(dir, "restored");
      const rs = await run(services, {
        kind: "restore",
        client_name: "files",
        key: String(r.key),
        params: { target },
      });
      assert.equal(rs.status, "completed", rs.error ?? "");
      assert.deepEqual(await treeListing(target), await treeListing(src));
      assert.equal(
        await Deno.readLink(join(target, "link-outside")),
        "/etc/hostname",
        "links are stored, not followed",
      );

      // GNU tar reads our archives too: an operator can always fall back to it.
      const gnu = join(dir, "gnu");
      await Deno.mkdir(gnu);
      const tar = await new Deno.Command("tar", {
        args: ["--zstd", "-xf", join(dir, "repo", String(r.key)), "-C", gnu],
      }).output();
      assert.ok(tar.success, new TextDecoder().decode(tar.stderr));
      assert.deepEqual(await treeListing(gnu), await treeListing(src));
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("directory: restore refuses a non-empty target unless replace, and replaces atomically", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    try {
      const key = String(
        (await run(services, { kind: "backup", client_name: "files" })).result!.key,
      );
      const target = join(dir, "busy");
      await Deno.mkdir(target);
      await Deno.writeTextFile(join(target, "precious.txt"), "keep me");
      const refused = await run(services, {
        kind: "restore",
        client_name: "files",
        key,
        params: { target },
      });
      assert.equal(refused.status, "failed");
      assert.match(refused.error!, /not empty: pass --yes .* "replace": true/);
      assert.equal(await Deno.readTextFile(join(target, "precious.txt")), "keep me");
      const replaced = await run(services, {
        kind: "restore",
        client_name: "files",
        key,
        params: { target, replace: true },
      });
      assert.equal(replaced.status, "completed", replaced.error ?? "");
      assert.deepEqual(await treeListing(target), await treeListing(src));
      const siblings = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.includes("cairn-")
      );
      assert.deepEqual(siblings, [], "no staging leftovers");
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("directory: a missing client directory is a clear failure and leaves no backup", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      gone: { kind: "directory", path: join(dir, "nope") },
    });
    try {
      const b = await run(services, { kind: "backup", client_name: "gone" });
      assert.equal(b.status, "failed");
      assert.match(b.error!, /Cannot read the directory .*nope of client gone: it does not exist/);
      assert.deepEqual(
        [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
          n === "repo"
            ? [...Deno.readDirSync(join(dir, "repo"))].some((x) => x.name === "backups")
            : false
        ),
        [],
      );
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("directory: a backup job leaves a manifest only when the artifact is whole", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    try {
      const b = await run(services, { kind: "backup", client_name: "files" });
      const key = String(b.result!.key);
      assert.ok(await services.repository.stat(manifestKey(key)));
      assert.ok(await services.repository.stat(key));
    } finally {
      await services.store.close();
    }
  });
});

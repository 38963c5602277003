import assert from "node:assert/strict";
import { join } from "node:path";
import { readManifest } from "../../src/repository/manifest.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { diskUsage, listTree, pyBuild } from "../helpers/tree.ts";

const asRoot = Deno.uid() === 0;
const DEEP_DIRS = 19; // 19 x 200-byte directory names, then a 181-byte file name: a 4,000-byte path

/**
 * Everything the issue lists, built with raw bytes: non-UTF-8 names, hard links, every
 * mode bit with odd owners, a 2775 root owned by 33:33 (www-data), ns mtimes, symlinks
 * (relative, dangling, absolute), an empty directory, a FIFO, a sparse file, user.*
 * xattrs, a 255-byte name and a 4,000-byte path.
 */
const BUILD = `
open(b"caf\\xe9.txt", "wb").write(b"latin-1 name\\n")
os.mkdir(b"d\\xff")
open(b"d\\xff/inside.txt", "wb").write(b"in a non-UTF-8 directory\\n")
open(b"h1", "wb").write(b"H" * 100000)
os.link(b"h1", b"h2")
os.mkdir(b"links")
os.link(b"h1", b"links/h3")
for name, mode in [(b"suid", 0o4755), (b"sgid", 0o2755), (b"none", 0o000), (b"odd", 0o640), (b"all", 0o7777)]:
    open(name, "wb").write(name)
    os.chown(name, 1234, 5678)
    os.chmod(name, mode)
os.mkdir(b"sticky"); os.chmod(b"sticky", 0o1777)
os.mkdir(b"group-dir"); os.chown(b"group-dir", 4321, 8765); os.chmod(b"group-dir", 0o2770)
os.symlink(b"caf\\xe9.txt", b"rel-link")
os.symlink(b"nowhere/at/all", b"dangling")
os.symlink(b"/etc/hostname", b"absolute")
os.lchown(b"absolute", 1234, 5678)
os.mkdir(b"empty")
os.mkfifo(b"fifo", 0o620)
with open(b"sparse.bin", "wb") as f:
    f.write(b"head")
    f.seek(64 << 20)
    f.write(b"tail")
os.setxattr(b"odd", "user.comment", b"kept")
os.setxattr(b"empty", "user.dir", b"\\x00\\xffbinary")
open(b"n" * 255, "wb").write(b"255-byte name")
deep = b"/".join([b"p" * 199 + bytes([48 + i % 10]) for i in range(${DEEP_DIRS})])
os.makedirs(deep)
path = deep + b"/" + b"f" * 181
assert len(path) == 4000, len(path)
open(path, "wb").write(b"deep")
# Distinct ns mtimes everywhere, children before parents, the root last.
paths = []
for dirpath, dirnames, filenames in os.walk(b".", topdown=False):
    paths += [os.path.join(dirpath, n) for n in filenames + dirnames]
for i, p in enumerate(sorted(paths, key=lambda p: -p.count(b"/"))):
    os.utime(p, ns=(1500000000123456789 + i * 1000000007, 1600000000987654321 + i * 1000000007), follow_symlinks=False)
os.chown(b".", 33, 33)
os.chmod(b".", 0o2775)
os.utime(b".", ns=(1400000000111111111, 1400000000222222222))
`;

Deno.test({
  name: "directory fidelity: non-UTF-8 names, hard links, modes, owners, root, mtimes, links, " +
    "FIFOs, sparse files, xattrs, long names and paths come back identical",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(src, BUILD);
      const expected = await listTree(src);
      assert.ok(expected.length > 20, expected.join("\n"));
      assert.ok(expected.includes("b'.' d 0o2775 33:33 mtime=1400000000222222222"), expected[0]);
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        assert.equal(b.status, "completed", b.error ?? "");
        const key = String(b.result!.key);
        const r = (await readManifest(services.repository, key)).facts;
        assert.deepEqual(Object.keys(b.result!).sort(), [
          "bytes",
          "duration_ms",
          "files",
          "key",
          "sha256",
          "size_bytes",
        ]);
        assert.equal(b.result!.files, r.files);
        assert.equal(b.result!.bytes, r.bytes);
        // Regular files with data: caf\xe9.txt, d\xff/inside.txt, h1 (h2 and links/h3 are
        // links to it), 5 mode files, sparse.bin, the 255-byte name, the deep file.
        assert.equal(r.files, 11);
        assert.equal(r.hardlinks, 2);
        assert.equal(r.symlinks, 3);
        assert.equal(r.special, 1);
        assert.equal(
          r.bytes,
          13 + 25 + 100000 + (4 + 4 + 4 + 3 + 3) + (64 * 1024 * 1024 + 4) + 13 + 4,
        );
        // One copy of the hard-linked data in the archive, the others are link entries.
        const listing = await new Deno.Command("tar", {
          args: ["--zstd", "-tvf", join(dir, "repo", key)],
          stdout: "piped",
        }).output();
        const lines = new TextDecoder().decode(listing.stdout).split("\n");
        const linked = lines.filter((l) => / \.\/(h1|h2|links\/h3)( |$)/.test(l));
        assert.equal(linked.filter((l) => / link to \.\/(h1|h2|links\/h3)$/.test(l)).length, 2);
        assert.equal(linked.filter((l) => / 100000 /.test(l)).length, 1, linked.join("\n"));
        const manifest = await readManifest(services.repository, key);
        assert.match(manifest.tool_versions.tar, /^GNU tar 1\.\d+$/);

        const v = await run(services, { kind: "verify", client_name: "files", key });
        assert.equal(v.status, "completed", v.error ?? "");

        const target = join(dir, "restored");
        const rs = await run(services, {
          kind: "restore",
          client_name: "files",
          key,
          params: { target },
        });
        assert.equal(rs.status, "completed", rs.error ?? "");
        assert.deepEqual(await listTree(target), expected);
        assert.ok(
          await diskUsage(join(target, "sparse.bin")) < 1024 * 1024,
          "the sparse file stays sparse",
        );
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory fidelity: a restore over the client's own directory keeps it (inode, owner, " +
    "mode) and gives back exactly the backed-up tree",
  ignore: !asRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(src, BUILD);
      const expected = await listTree(src);
      const inode = (await Deno.stat(src)).ino;
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        assert.equal(b.status, "completed", b.error ?? "");
        // The operator's mess after the backup: new, changed and deleted entries, another root mode.
        await pyBuild(
          src,
          `open(b"new\\xfe", "wb").write(b"x")\nos.remove(b"h2")\nopen(b"odd", "wb").write(b"changed")\nos.chmod(b".", 0o700)\nos.chown(b".", 0, 0)`,
        );
        assert.notDeepEqual(await listTree(src), expected);
        const rs = await run(services, {
          kind: "restore",
          client_name: "files",
          key: String(b.result!.key),
          params: { replace: true },
        });
        assert.equal(rs.status, "completed", rs.error ?? "");
        assert.equal(rs.result!.in_place, true);
        assert.equal((await Deno.stat(src)).ino, inode, "the same directory, not a new one");
        assert.deepEqual(await listTree(src), expected);
      } finally {
        await services.store.close();
      }
    });
  },
});

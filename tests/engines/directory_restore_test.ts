import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { backupKey } from "../../src/repository/keys.ts";
import { type Manifest, MANIFEST_FORMAT, writeManifest } from "../../src/repository/manifest.ts";
import { runHere } from "../../src/runtime/run_here.ts";
import type { Services } from "../../src/runtime/services.ts";
import { mountTmpfs } from "../helpers/mounts.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { isMountPoint, listTree, pyBuild } from "../helpers/tree.ts";

const asRoot = Deno.uid() === 0;

/** Builds a tar.gz with python's tarfile; `body` adds members to `t` (helpers f, l, d given). */
async function craft(path: string, body: string): Promise<Uint8Array> {
  const script = `
import tarfile, io, sys
def f(name, data=b"pwned", mode=0o777, uid=0, gid=0):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.uid = uid; ti.gid = gid
    t.addfile(ti, io.BytesIO(data))
def l(name, target, kind=tarfile.SYMTYPE):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = target; t.addfile(ti)
def d(name, mode=0o777, uid=0, gid=0):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; ti.uid = uid; ti.gid = gid
    t.addfile(ti)
with tarfile.open(sys.argv[1], "w:gz", format=tarfile.PAX_FORMAT) as t:
${body.split("\n").map((line) => "    " + line).join("\n")}
`;
  const out = await new Deno.Command("python3", { args: ["-c", script, path], stderr: "piped" })
    .output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return await Deno.readFile(path);
}

/** Puts `bytes` into the repository as a directory backup of `client`, with a matching manifest. */
async function store(
  services: Services,
  repoDir: string,
  client: string,
  bytes: Uint8Array,
  label: string,
): Promise<string> {
  const key = backupKey(client, new Date(), label, "tar.gz");
  await Deno.mkdir(join(repoDir, "backups", client), { recursive: true });
  await Deno.writeFile(join(repoDir, key), bytes);
  const manifest: Manifest = {
    format_version: MANIFEST_FORMAT,
    key,
    client_name: client,
    kind: "directory",
    label,
    created_at: new Date().toISOString(),
    size_bytes: bytes.byteLength,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    job_id: null,
    schedule_id: null,
    tool_versions: {},
    facts: { files: 0, bytes: 0 },
  };
  await writeManifest(services.repository, manifest);
  return key;
}

/** Everything in `dir` but the repository and the job store: what a restore must not touch. */
async function around(dir: string, except: string[]): Promise<string[]> {
  return (await listTree(dir)).filter((line) =>
    !/^b'(repo|cairn\.db)/.test(line) && !except.some((e) => line.startsWith(`b'${e}`)) &&
    !line.startsWith("b'.' ")
  );
}

const OUTSIDE = `
os.makedirs(b"outside/dir")
open(b"outside/victim", "wb").write(b"original")
os.chmod(b"outside/victim", 0o640)
os.chmod(b"outside/dir", 0o750)
os.utime(b"outside/victim", ns=(1, 1000000000))
os.utime(b"outside/dir", ns=(1, 1000000000))
os.utime(b"outside", ns=(1, 1000000000))
`;

Deno.test({
  name: "directory restore: no crafted archive changes anything outside the target",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      await pyBuild(dir, OUTSIDE);
      const out = join(dir, "outside");
      const src = join(dir, "src");
      await Deno.mkdir(src);
      // [name, members, expected status]: GNU tar strips a leading "/" (the member lands
      // inside the target), refuses "..", and creates outward symlinks last.
      // "either": GNU tar's outcome depends on whether the directory reuses the inode of
      // the placeholder it replaced (delayed symlinks are checked by device, inode and
      // ctime); both outcomes leave everything outside the target untouched, which is
      // what is asserted.
      const cases: Array<[string, string, "completed" | "failed" | "either"]> = [
        ["absolute", `f("${out}/victim")\nd("${out}/dir", mode=0o777)`, "completed"],
        ["dotdot", `f("ok")\nf("../outside/victim")`, "failed"],
        ["dotdot-inner", `f("a/../../outside/victim")`, "failed"],
        ["symlink-abs-then-under", `l("esc", "${out}")\nf("esc/victim")`, "failed"],
        ["symlink-rel-then-under", `l("esc", "../outside")\nf("esc/victim")`, "failed"],
        ["symlink-chain-then-under", `l("x", "y")\nl("y", "${out}")\nf("x/victim")`, "failed"],
        ["symlink-then-same-name", `l("victim", "${out}/victim")\nf("victim")`, "completed"],
        [
          "symlink-then-dir-chmod",
          `l("esc", "${out}/dir")\nd("esc", mode=0o777, uid=1234, gid=1234)`,
          "either",
        ],
        [
          "hardlink-outside",
          `l("h", "${out}/victim", tarfile.LNKTYPE)\nf("h", mode=0o4777, uid=1234)`,
          "failed",
        ],
        ["hardlink-dotdot", `l("h", "../outside/victim", tarfile.LNKTYPE)\nf("h")`, "failed"],
        ["root-chmod", `d(".", mode=0o4777, uid=1234, gid=1234)\nl("r", "..")\nf("r/x")`, "failed"],
      ];
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const before = await around(dir, ["t-", ".t-"]);
        for (const [name, members, expected] of cases) {
          const bytes = await craft(join(dir, "crafted.tar.gz"), members);
          await Deno.remove(join(dir, "crafted.tar.gz"));
          const key = await store(services, join(dir, "repo"), "files", bytes, name);
          const target = join(dir, `t-${name}`);
          const rs = await run(services, {
            kind: "restore",
            client_name: "files",
            key,
            params: { target },
          });
          if (expected === "either") {
            assert.ok(["completed", "failed"].includes(rs.status), `${name}: ${rs.status}`);
            if (rs.status === "completed") {
              const esc = await Deno.lstat(join(target, "esc"));
              assert.ok(!esc.isSymlink, `${name}: esc must not be left a link out of the target`);
            }
          } else assert.equal(rs.status, expected, `${name}: ${rs.error}`);
          if (expected === "failed" || rs.status === "failed") {
            assert.match(rs.error!, /GNU tar refused to restore .*nothing was changed/, name);
            assert.equal(await Deno.lstat(target).then(() => true, () => false), false, name);
          }
          assert.deepEqual(await around(dir, ["t-", ".t-"]), before, name);
          assert.deepEqual(
            [...Deno.readDirSync(dir)].filter((e) => e.name.includes("cairn-")),
            [],
            `${name}: no staging left`,
          );
        }
        // The absolute member landed inside the target, under its stripped name.
        assert.equal(
          await Deno.readTextFile(join(dir, "t-absolute", out, "victim")),
          "pwned",
        );
        // Whether the link or the file of the same name is left depends on GNU tar's
        // delayed-link check (inode reuse); either stays inside the target.
        const victim = await Deno.lstat(join(dir, "t-symlink-then-same-name", "victim"));
        if (victim.isSymlink) {
          assert.equal(
            await Deno.readLink(join(dir, "t-symlink-then-same-name", "victim")),
            `${out}/victim`,
          );
        } else assert.ok(victim.isFile);
      } finally {
        await services.store.close();
      }
    });
  },
});

/** A client directory with content, its own mode and owner, and a fixed mtime. */
const LIVE = `
open(b"data\\xe9.txt", "wb").write(b"live data")
os.makedirs(b"sub/deeper")
open(b"sub/deeper/f", "wb").write(b"f")
os.symlink(b"/etc/hostname", b"link")
os.chown(b".", 33, 33)
os.chmod(b".", 0o2775)
for p in [b"sub/deeper/f", b"sub/deeper", b"sub", b"."]:
    os.utime(p, ns=(1500000000000000001, 1500000000000000002))
`;

Deno.test({
  name: "directory restore in place: a crafted archive that fails mid-way leaves the target " +
    "exactly as it was",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(src, LIVE);
      const before = await listTree(src);
      const inode = (await Deno.stat(src)).ino;
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const bytes = await craft(
          join(dir, "c.tar.gz"),
          `d(".", mode=0o700)\nfor i in range(50): f("new%d" % i, data=b"x" * 10000)\nf("../escape")`,
        );
        const key = await store(services, join(dir, "repo"), "files", bytes, "midway");
        const rs = await run(services, {
          kind: "restore",
          client_name: "files",
          key,
          params: { replace: true },
        });
        assert.equal(rs.status, "failed");
        assert.match(rs.error!, /Member name contains '\.\.'/);
        assert.deepEqual(await listTree(src), before);
        assert.equal((await Deno.stat(src)).ino, inode);
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name:
    "directory restore in place: a cancel during extraction leaves the target exactly as it was",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(src, LIVE);
      const before = await listTree(src);
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        // 200 files of 1 MiB: extraction takes long enough to be cancelled in the middle.
        const bytes = await craft(
          join(dir, "c.tar.gz"),
          `import os\nfor i in range(200): f("big%03d" % i, data=os.urandom(1 << 16) * 16)`,
        );
        const key = await store(services, join(dir, "repo"), "files", bytes, "big");
        const controller = new AbortController();
        let extracting = false;
        const rs = await runHere(services, {
          kind: "restore",
          client_name: "files",
          key,
          params: { replace: true },
          max_attempts: 1,
        }, {
          signal: controller.signal,
          onProgress: (_job, p) => {
            if (p.phase === "extracting" && p.bytes_done > 8 << 20 && !extracting) {
              extracting = true;
              controller.abort();
            }
          },
        });
        assert.ok(extracting, "the cancel came during extraction");
        assert.equal(rs.status, "cancelled", rs.error ?? "");
        assert.deepEqual(await listTree(src), before);
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory restore in place: a damaged artifact is refused before anything is touched",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(src, LIVE);
      const before = await listTree(src);
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        const key = String(b.result!.key);
        const bytes = await Deno.readFile(join(dir, "repo", key));
        bytes[bytes.length - 20] ^= 0x01; // in the gzip trailer: only the whole-file check sees it first
        await Deno.writeFile(join(dir, "repo", key), bytes);
        const phases: string[] = [];
        const rs = await runHere(services, {
          kind: "restore",
          client_name: "files",
          key,
          params: { replace: true },
          max_attempts: 1,
        }, { onProgress: (_job, p) => phases.push(p.phase ?? "") });
        assert.equal(rs.status, "failed");
        assert.match(rs.error!, /damaged: sha256 .* does not match the manifest/);
        assert.ok(phases.includes("checking"), phases.join());
        assert.ok(!phases.includes("extracting"), "extraction never started");
        assert.deepEqual(await listTree(src), before);
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory restore in place: a mount point stays a mount point; a mount point inside " +
    "that cannot be moved fails the restore and leaves the target as it was",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      const unmount = await mountTmpfs(src, { sizeBytes: 8 << 20 });
      try {
        await pyBuild(src, LIVE);
        const services = await testServices(dir, {
          files: { kind: "directory", path: src, one_file_system: true },
        });
        try {
          const b = await run(services, { kind: "backup", client_name: "files" });
          assert.equal(b.status, "completed", b.error ?? "");
          const expected = await listTree(src);
          await pyBuild(src, `open(b"junk", "wb").write(b"j")\nos.chmod(b".", 0o700)`);
          const rs = await run(services, {
            kind: "restore",
            client_name: "files",
            key: String(b.result!.key),
            params: { replace: true },
          });
          assert.equal(rs.status, "completed", rs.error ?? "");
          assert.ok(await isMountPoint(src), "still a mount point");
          assert.deepEqual(await listTree(src), expected);

          // A filesystem mounted inside the target cannot be moved aside: roll back.
          const inner = join(src, "sub");
          const unmountInner = await mountTmpfs(inner, { sizeBytes: 1 << 20 });
          try {
            await Deno.writeTextFile(join(inner, "mounted.txt"), "m");
            const live = await listTree(src);
            const failed = await run(services, {
              kind: "restore",
              client_name: "files",
              key: String(b.result!.key),
              params: { replace: true },
            });
            assert.equal(failed.status, "failed");
            assert.match(failed.error!, /Could not move the entries of .* Device or resource busy/);
            assert.deepEqual(await listTree(src), live);
            assert.ok(await isMountPoint(inner));
          } finally {
            await unmountInner();
          }
        } finally {
          await services.store.close();
        }
      } finally {
        await unmount();
      }
    });
  },
});

const FIXTURE = new URL("../fixtures/directory-legacy/", import.meta.url).pathname;

Deno.test({
  name: "directory: a backup written by cairn's own tar writer (before GNU tar) still verifies " +
    "and restores",
  ignore: !asRoot, // the archive holds files owned by 1234:5678
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.mkdir(join(dir, "repo"));
      await new Deno.Command("cp", { args: ["-a", join(FIXTURE, "backups"), join(dir, "repo")] })
        .output();
      const services = await testServices(dir, {
        files: { kind: "directory", path: join(dir, "src") },
      });
      try {
        const key = "backups/files/20261130T094737490Z-legacy.tar.gz";
        const v = await run(services, { kind: "verify", client_name: "files", key });
        assert.equal(v.status, "completed", v.error ?? "");
        assert.deepEqual(v.result!.checks, {
          files: 4,
          bytes: 6024,
          directories: 3,
          symlinks: 1,
          hardlinks: 0,
        });
        const target = join(dir, "restored");
        const rs = await run(services, {
          kind: "restore",
          client_name: "files",
          key,
          params: { target },
        });
        assert.equal(rs.status, "completed", rs.error ?? "");
        const listing = (await listTree(target)).map((l) =>
          l.replace(/ sha256=\w+/, "").replace(
            / mtime=\d+/,
            (m) => m === " mtime=1577934245000000000" ? " 2020-01-02T03:04:05Z" : " (now)",
          )
        );
        assert.deepEqual(listing, [
          `b'.' d 0o755 0:0 (now)`,
          `b'a.txt' f 0o640 0:0 2020-01-02T03:04:05Z size=6`,
          `b'empty-dir' d 0o755 0:0 2020-01-02T03:04:05Z`,
          `b'sub' d 0o755 0:0 2020-01-02T03:04:05Z`,
          `b'sub/b.txt' f 0o644 1234:5678 2020-01-02T03:04:05Z size=6000`,
          `b'sub/deeper' d 0o755 0:0 2020-01-02T03:04:05Z`,
          `b'sub/deeper/${"l".repeat(150)}' f 0o644 0:0 2020-01-02T03:04:05Z size=10`,
          `b'sub/link-to-a' l 0o777 0:0 (now) -> b'../a.txt'`,
          `b'sub/\\xc3\\xbcn\\xc3\\xafc\\xc3\\xb8d\\xc3\\xa9 name.txt' f 0o644 0:0 2020-01-02T03:04:05Z size=8`,
        ]);
        assert.equal(await Deno.readTextFile(join(target, "sub/b.txt")), "bravo ".repeat(1000));
      } finally {
        await services.store.close();
      }
    });
  },
});

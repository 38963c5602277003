import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.ts";
import { readManifest } from "../../src/repository/manifest.ts";
import { mountTmpfs, withoutDacOverride } from "../helpers/mounts.ts";
import { run, testServices } from "../helpers/services.ts";
import { cairn, CAIRN_PERMISSIONS, MAIN, withTempDir, writeConfig } from "../helpers/tmp.ts";
import { pyBuild } from "../helpers/tree.ts";

const asRoot = Deno.uid() === 0;

async function tarList(path: string): Promise<string[]> {
  const out = await new Deno.Command("tar", { args: ["--zstd", "-tf", path], stdout: "piped" })
    .output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).sort();
}

Deno.test({
  name: "directory: a unix socket is skipped with a counted warning in the job result and manifest",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(
        src,
        `open("a.txt", "w").write("a")\ns = socket.socket(socket.AF_UNIX)\ns.bind("app.sock")`,
      );
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        assert.equal(b.status, "completed", b.error ?? "");
        assert.equal(b.result!.sockets_skipped, 1);
        assert.deepEqual(b.result!.warnings, [`${src}/app.sock: socket ignored`]);
        const manifest = await readManifest(services.repository, String(b.result!.key));
        assert.equal(manifest.facts.sockets_skipped, 1);
        assert.deepEqual(manifest.facts.warnings, [`${src}/app.sock: socket ignored`]);
        assert.deepEqual(await tarList(join(dir, "repo", String(b.result!.key))), [
          "./",
          "./a.txt",
        ]);
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory: a file that changes while tar reads it completes the backup with the warning " +
    "recorded in the job result and the manifest",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      const log = join(src, "app.log");
      // 32 MiB to read while a writer appends to it every millisecond.
      await pyBuild(src, `open("app.log", "wb").write(os.urandom(32 << 20))`);
      const writer = new Deno.Command("python3", {
        args: [
          "-c",
          "import sys, time\nwhile True:\n  open(sys.argv[1], 'ab').write(b'line\\n'); time.sleep(0.001)",
          log,
        ],
      }).spawn();
      // The writer must be appending before tar starts: tar now reads 32 MiB in a
      // fraction of a second (zstd keeps pace), less than python takes to start on a
      // loaded machine.
      while ((await Deno.stat(log)).size <= 32 << 20) await new Promise((r) => setTimeout(r, 5));
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        assert.equal(b.status, "completed", b.error ?? "");
        assert.equal(b.result!.changed_while_reading, 1);
        assert.deepEqual(b.result!.warnings, [`${log}: file changed as we read it`]);
        const manifest = await readManifest(services.repository, String(b.result!.key));
        assert.equal(manifest.facts.changed_while_reading, 1);
        assert.deepEqual(manifest.facts.warnings, [`${log}: file changed as we read it`]);
        const v = await run(services, {
          kind: "verify",
          client_name: "files",
          key: String(b.result!.key),
        });
        assert.equal(v.status, "completed", v.error ?? "");
      } finally {
        writer.kill("SIGKILL");
        await writer.status;
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory: a file cairn cannot read fails the backup, naming the file, and stores nothing",
  ignore: !asRoot, // root without CAP_DAC_OVERRIDE: the way to make a file unreadable to root
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(join(src, "sub"), { recursive: true });
      await Deno.writeTextFile(join(src, "ok.txt"), "fine");
      await Deno.writeTextFile(join(src, "sub/secret.key"), "no");
      await Deno.chmod(join(src, "sub/secret.key"), 0o000);
      await Deno.chown(join(src, "sub/secret.key"), 1234, 1234);
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
      });
      const cmd = withoutDacOverride([
        Deno.execPath(),
        "run",
        ...CAIRN_PERMISSIONS,
        MAIN,
        "backup",
        "files",
        "--config",
        config,
      ]);
      const out = await new Deno.Command(cmd[0], {
        args: cmd.slice(1),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.match(
        stderr,
        new RegExp(
          `Cannot back up ${src} of client files: ${src}/sub/secret\\.key: Cannot open: Permission denied`,
        ),
      );
      const list = await cairn(["list", "--json", "--config", config]);
      assert.deepEqual(JSON.parse(list.stdout).backups, []);
      // The fs repository removes a client's directory once its last file is gone.
      let leftovers: Deno.DirEntry[] = [];
      try {
        leftovers = [...Deno.readDirSync(join(dir, "repo", "backups", "files"))];
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      assert.deepEqual(leftovers, [], "the partial artifact is removed");
    });
  },
});

Deno.test({
  name: "directory: exclude patterns follow GNU tar --exclude",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await pyBuild(
        src,
        `for p in ["keep.txt", "a.log", "sub/b.log", "sub/c.txt", "cache/x", "sub/cache/y"]:\n  os.makedirs(os.path.dirname(p) or ".", exist_ok=True); open(p, "w").write(p)`,
      );
      const services = await testServices(dir, {
        files: { kind: "directory", path: src, exclude: ["*.log", "./cache"] },
      });
      try {
        const b = await run(services, { kind: "backup", client_name: "files" });
        assert.equal(b.status, "completed", b.error ?? "");
        assert.equal(b.result!.files, 3);
        assert.deepEqual(await tarList(join(dir, "repo", String(b.result!.key))), [
          "./",
          "./keep.txt",
          "./sub/",
          "./sub/c.txt",
          "./sub/cache/",
          "./sub/cache/y",
        ]);
      } finally {
        await services.store.close();
      }
    });
  },
});

Deno.test({
  name: "directory: one_file_system leaves out what is mounted below the directory",
  ignore: !asRoot,
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      await Deno.writeTextFile(join(src, "here.txt"), "here");
      const unmount = await mountTmpfs(join(src, "mnt"), { sizeBytes: 1 << 20 });
      try {
        await Deno.writeTextFile(join(src, "mnt", "elsewhere.txt"), "elsewhere");
        const services = await testServices(dir, {
          all: { kind: "directory", path: src },
          one: { kind: "directory", path: src, one_file_system: true },
        });
        try {
          const all = await run(services, { kind: "backup", client_name: "all" });
          const one = await run(services, { kind: "backup", client_name: "one" });
          assert.equal(all.status, "completed", all.error ?? "");
          assert.equal(one.status, "completed", one.error ?? "");
          assert.deepEqual(await tarList(join(dir, "repo", String(all.result!.key))), [
            "./",
            "./here.txt",
            "./mnt/",
            "./mnt/elsewhere.txt",
          ]);
          assert.deepEqual(await tarList(join(dir, "repo", String(one.result!.key))), [
            "./",
            "./here.txt",
            "./mnt/",
          ]);
        } finally {
          await services.store.close();
        }
      } finally {
        await unmount();
      }
    });
  },
});

Deno.test("directory config: exclude and one_file_system are validated", () => {
  const parse = (client: Record<string, unknown>) =>
    parseConfig(
      JSON.stringify({ clients: { files: { kind: "directory", path: "/x", ...client } } }),
    );
  const ok = parse({ exclude: ["*.tmp", "./cache"], one_file_system: true });
  assert.deepEqual(ok.clients.files, {
    kind: "directory",
    path: "/x",
    exclude: ["*.tmp", "./cache"],
    one_file_system: true,
  });
  assert.deepEqual(parse({}).clients.files, {
    kind: "directory",
    path: "/x",
    exclude: [],
    one_file_system: false,
  });
  assert.throws(() => parse({ exclude: [""] }), /clients\.files\.exclude\.0.*cannot be empty/s);
  assert.throws(() => parse({ exclude: "*.log" }), /clients\.files\.exclude/);
  assert.throws(() => parse({ exclude: ["a\nb"] }), /NUL byte or a newline/);
  assert.throws(() => parse({ one_file_system: "yes" }), /clients\.files\.one_file_system/);
});

Deno.test("directory config: tools.tar defaults to tar on PATH, CAIRN_TAR_PATH overrides it", () => {
  assert.equal(parseConfig("", { env: () => undefined }).tools.tar, "tar");
  assert.equal(
    parseConfig("tools: {tar: /opt/gnu/bin/tar}", { env: () => undefined }).tools.tar,
    "/opt/gnu/bin/tar",
  );
  assert.equal(
    parseConfig("tools: {tar: /opt/gnu/bin/tar}", {
      env: (n) => n === "CAIRN_TAR_PATH" ? "/usr/local/bin/gtar" : undefined,
    }).tools.tar,
    "/usr/local/bin/gtar",
  );
});

Deno.test({
  name: "directory: a tar that is not GNU tar 1.30 or later, or is missing, fails the job clearly",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      const fake = async (name: string, line: string) => {
        const path = join(dir, name);
        await Deno.writeTextFile(path, `#!/bin/sh\necho '${line}'\n`);
        await Deno.chmod(path, 0o755);
        return path;
      };
      const cases: Array<[string, RegExp]> = [
        [
          await fake("bsdtar", "bsdtar 3.6.2 - libarchive 3.6.2 zlib/1.2.13"),
          /bsdtar is not GNU tar \(its --version says "bsdtar 3\.6\.2 - libarchive 3\.6\.2 zlib\/1\.2\.13"\): directory backups need GNU tar 1\.30 or later; point tools\.tar in the config \(or CAIRN_TAR_PATH\) at it/,
        ],
        [
          await fake("oldtar", "tar (GNU tar) 1.29"),
          /oldtar is GNU tar 1\.29, older than the 1\.30 directory backups need/,
        ],
        [
          join(dir, "no-such-tar"),
          /no-such-tar could not be run .*: directory backups need GNU tar 1\.30 or later/,
        ],
      ];
      for (const [bin, message] of cases) {
        await Deno.mkdir(join(dir, "run"), { recursive: true });
        const config = await writeConfig(join(dir, "run"), {
          clients: { files: { kind: "directory", path: src } },
        });
        const out = await cairn(["backup", "files", "--config", config], {
          env: { CAIRN_TAR_PATH: bin },
        });
        assert.equal(out.code, 1, out.stderr);
        assert.match(out.stderr, message);
        await Deno.remove(join(dir, "run"), { recursive: true });
      }
    });
  },
});

/** Runs the real cairn CLI as uid/gid 1234 with no capabilities (a fresh Deno cache it owns). */
async function cairnAsUser(dir: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const denoDir = join(dir, "deno-cache");
  await Deno.mkdir(denoDir, { recursive: true });
  await Deno.chown(denoDir, 1234, 1234);
  const out = await new Deno.Command("setpriv", {
    args: [
      "--reuid=1234",
      "--regid=1234",
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "env",
      `DENO_DIR=${denoDir}`,
      `HOME=${dir}`,
      "NO_COLOR=1",
      Deno.execPath(),
      "run",
      ...CAIRN_PERMISSIONS,
      MAIN,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name: "directory as an unprivileged user: an unreadable file fails the backup naming it; " +
    "without it, backup and restore work and the files belong to the user",
  ignore: !asRoot, // root sets up the user's directory
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const src = join(dir, "src");
      await Deno.mkdir(join(src, "sub"), { recursive: true });
      await Deno.writeTextFile(join(src, "mine.txt"), "mine");
      await Deno.writeTextFile(join(src, "sub", "root-only.key"), "secret");
      await Deno.chmod(join(src, "sub", "root-only.key"), 0o600); // root's, unreadable to 1234
      await Deno.writeTextFile(join(src, "sub", "roots.txt"), "readable"); // root's, mode 0644
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
      });
      for (const p of [dir, src, join(src, "sub"), join(src, "mine.txt"), config]) {
        await Deno.chown(p, 1234, 1234);
      }
      const failed = await cairnAsUser(dir, ["backup", "files", "--config", config]);
      assert.equal(failed.code, 1, failed.stderr);
      assert.match(
        failed.stderr,
        new RegExp(
          `Cannot back up ${src} of client files: ${src}/sub/root-only\\.key: Cannot open: Permission denied`,
        ),
      );

      await Deno.remove(join(src, "sub", "root-only.key"));
      const ok = await cairnAsUser(dir, ["backup", "files", "--json", "--config", config]);
      assert.equal(ok.code, 0, ok.stderr);
      const list = await cairn(["list", "--json", "--config", config]);
      const [backup] = JSON.parse(list.stdout).backups;
      const target = join(dir, "restored");
      const restored = await cairnAsUser(dir, [
        "restore",
        backup.key,
        "--target",
        target,
        "--config",
        config,
      ]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.equal(await Deno.readTextFile(join(target, "mine.txt")), "mine");
      // Not root: tar cannot give files to other owners, so they become the user's.
      assert.equal(await Deno.readTextFile(join(target, "sub", "roots.txt")), "readable");
      for (
        const p of [
          target,
          join(target, "sub"),
          join(target, "mine.txt"),
          join(target, "sub", "roots.txt"),
        ]
      ) {
        const info = await Deno.lstat(p);
        assert.deepEqual([info.uid, info.gid], [1234, 1234], p);
      }
    });
  },
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { CairnError } from "../../src/errors.ts";
import { FsRepository, syncFilesystem } from "../../src/repository/fs.ts";
import { checkWritable } from "../../src/repository/preflight.ts";
import { deleteBackup, listBackups, writeManifest } from "../../src/repository/manifest.ts";
import { mountTmpfs, SKIP_FAULTS } from "../helpers/mounts.ts";
import { tempDir, withTempDir } from "../helpers/tmp.ts";
import { repositoryConformance } from "./conformance.ts";

repositoryConformance("fs", async () => {
  const dir = await tempDir();
  return { repo: new FsRepository(dir), cleanup: () => Deno.remove(dir, { recursive: true }) };
}, ["move", "batch", "partialWrites", "link", "putIfAbsent"]);

Deno.test("fs repository: deferred puts are made durable by one filesystem sync per batch", async () => {
  await withTempDir(async (dir) => {
    const calls: string[] = [];
    const repo = new FsRepository(dir, {
      syncFilesystem: (path) => {
        calls.push(path);
        return Promise.resolve(true);
      },
    });
    for (let i = 0; i < 5; i++) {
      await repo.capabilities.batch!.put(
        `mirrors/m/${i}.bin`,
        ReadableStream.from([new Uint8Array([i])]),
      );
    }
    assert.deepEqual(calls, [], "nothing is synced before the batch sync");
    await repo.capabilities.batch!.sync();
    assert.deepEqual(calls, [dir]);
    await repo.capabilities.batch!.sync();
    assert.deepEqual(calls, [dir], "an empty batch syncs nothing");
    await repo.put("backups/c/x", ReadableStream.from([new Uint8Array([1])]));
    await repo.capabilities.batch!.sync();
    assert.deepEqual(calls, [dir], "a plain put is durable on its own");
  });
});

Deno.test("fs repository: without syncfs, each deferred file is synced, and one removed since is skipped", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(dir, { syncFilesystem: () => Promise.resolve(false) });
    for (let i = 0; i < 20; i++) {
      await repo.capabilities.batch!.put(
        `mirrors/m/${i % 3}/${i}.bin`,
        ReadableStream.from([new Uint8Array([i])]),
      );
    }
    await repo.remove("mirrors/m/1/7.bin");
    await repo.capabilities.batch!.sync();
    assert.equal((await repo.stat("mirrors/m/2/5.bin"))?.size, 1);
    assert.equal(await repo.stat("mirrors/m/1/7.bin"), null);
  });
});

Deno.test("fs repository: deferred syncs queue, and after a failed one every later one fails", async () => {
  await withTempDir(async (dir) => {
    const events: string[] = [];
    let calls = 0;
    const repo = new FsRepository(dir, {
      syncFilesystem: async () => {
        const call = ++calls;
        events.push(`start ${call}`);
        await new Promise((r) => setTimeout(r, 30));
        events.push(`end ${call}`);
        if (call === 2) throw new Error("Input/output error (os error 5)");
        return true;
      },
    });
    const putOne = (key: string) =>
      repo.capabilities.batch!.put(key, ReadableStream.from([new Uint8Array([1])]));
    await putOne("mirrors/m/a");
    const first = repo.capabilities.batch!.sync();
    await putOne("mirrors/m/b"); // lands while the first sync runs
    const second = repo.capabilities.batch!.sync();
    await first;
    await assert.rejects(
      second,
      (e) =>
        e instanceof CairnError && e.code === "REPOSITORY_UNAVAILABLE" &&
        /Input\/output/.test(e.message),
    );
    assert.deepEqual(events, ["start 1", "end 1", "start 2", "end 2"], "one sync at a time");
    await putOne("mirrors/m/c");
    await assert.rejects(repo.capabilities.batch!.sync(), /not retried/);
    await assert.rejects(
      repo.capabilities.batch!.sync(),
      /not retried/,
      "even with nothing new to sync",
    );
    assert.equal(calls, 2);
  });
});

Deno.test("fs repository: the real filesystem sync (sync -f) runs here", async () => {
  await withTempDir(async (dir) => {
    assert.equal(await syncFilesystem(dir), true, "coreutils sync -f is missing or failed");
  });
});

Deno.test("fs repository: disk full fails with DISK_FULL and leaves nothing behind", {
  ignore: SKIP_FAULTS,
}, async () => {
  await withTempDir(async (dir) => {
    const mnt = join(dir, "small");
    const unmount = await mountTmpfs(mnt, { sizeBytes: 256 * 1024 });
    try {
      const repo = new FsRepository(mnt);
      let sent = 0;
      let cancelled = false;
      const big = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ < 64) c.enqueue(new Uint8Array(64 * 1024).fill(sent));
          else c.close();
        },
        cancel() {
          cancelled = true;
        },
      });
      await assert.rejects(
        repo.put("backups/c/x", big),
        (e) => e instanceof CairnError && e.code === "DISK_FULL" && /No space left/.test(e.message),
      );
      assert.ok(cancelled, "the source is told to stop, not left stalled");
      assert.equal(await repo.stat("backups/c/x"), null);
      const left = [...Deno.readDirSync(join(mnt, ".tmp"))];
      assert.deepEqual(left, [], "the temporary file was removed");
    } finally {
      await unmount();
    }
  });
});

Deno.test(
  "fs repository: a read-only repository says it is not writable",
  { ignore: SKIP_FAULTS },
  async () => {
    await withTempDir(async (dir) => {
      const mnt = join(dir, "ro");
      const unmount = await mountTmpfs(mnt, { sizeBytes: 64 * 1024, readOnly: true });
      try {
        const repo = new FsRepository(mnt);
        await assert.rejects(
          checkWritable(repo),
          (e) =>
            e instanceof CairnError && e.code === "REPOSITORY_UNAVAILABLE" &&
            /not writable/.test(e.message),
        );
        await assert.rejects(
          repo.put("a/b", ReadableStream.from([new Uint8Array(3)])),
          (e) => e instanceof CairnError && e.code === "REPOSITORY_UNAVAILABLE",
        );
      } finally {
        await unmount();
      }
    });
  },
);

Deno.test("catalog: only backups whose manifest exists are listed, newest first, paged", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(dir);
    const mk = async (key: string, client: string, withManifest = true) => {
      await repo.put(key, ReadableStream.from([new Uint8Array([1, 2, 3])]));
      if (withManifest) {
        await writeManifest(repo, {
          format_version: 1,
          key,
          client_name: client,
          kind: "directory",
          label: "manual",
          created_at: "2026-01-01T00:00:00.000Z",
          size_bytes: 3,
          sha256: "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",
          job_id: 1,
          schedule_id: null,
          tool_versions: {},
          facts: {},
        });
      }
    };
    await mk("backups/a/20260101T000000000Z-manual.tar.gz", "a");
    await mk("backups/a/20260103T000000000Z-manual.tar.gz", "a");
    await mk("backups/b/20260102T000000000Z-manual.tar.gz", "b");
    await mk("backups/a/20260104T000000000Z-manual.tar.gz", "a", false); // half-written: no manifest
    await Deno.writeTextFile(join(dir, "backups/a/stray.txt"), "not a backup");
    const all = await listBackups(repo);
    assert.deepEqual(all.backups.map((b) => b.key), [
      "backups/a/20260103T000000000Z-manual.tar.gz",
      "backups/b/20260102T000000000Z-manual.tar.gz",
      "backups/a/20260101T000000000Z-manual.tar.gz",
    ]);
    const p1 = await listBackups(repo, { limit: 2 });
    assert.equal(p1.backups.length, 2);
    const p2 = await listBackups(repo, { limit: 2, cursor: p1.next_cursor });
    assert.deepEqual(p2.backups.map((b) => b.key), ["backups/a/20260101T000000000Z-manual.tar.gz"]);
    assert.equal(p2.next_cursor, null);
    assert.equal((await listBackups(repo, { client: "b" })).backups.length, 1);
    await deleteBackup(repo, "backups/b/20260102T000000000Z-manual.tar.gz");
    assert.equal((await listBackups(repo, { client: "b" })).backups.length, 0);
    await assert.rejects(
      deleteBackup(repo, "backups/b/20260102T000000000Z-manual.tar.gz"),
      (e) => e instanceof CairnError && e.code === "BACKUP_NOT_FOUND",
    );
    await assert.rejects(
      deleteBackup(repo, "backups/../x"),
      (e) => e instanceof CairnError && e.code === "INVALID_KEY",
    );
  });
});

Deno.test("fs repository: a put still lands when its directories were removed since the last put", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(dir);
    const bytes = (n: number) => ReadableStream.from([new Uint8Array([n])]);
    await repo.put("mirrors/a/x/1", bytes(1));
    // An operator clears the staging area and prunes a folder while the daemon runs.
    await Deno.remove(join(dir, ".tmp"), { recursive: true });
    await Deno.remove(join(dir, "mirrors"), { recursive: true });
    await repo.put("mirrors/a/x/2", bytes(2));
    assert.deepEqual(await Deno.readFile(join(dir, "mirrors/a/x/2")), new Uint8Array([2]));
    await Deno.remove(join(dir, "mirrors/a"), { recursive: true });
    await repo.put("mirrors/a/x/3", bytes(3));
    assert.deepEqual(await Deno.readFile(join(dir, "mirrors/a/x/3")), new Uint8Array([3]));
  });
});

Deno.test("fs repository: move is a rename (the same file), and a batched one waits for the batch sync", async () => {
  await withTempDir(async (dir) => {
    const calls: string[] = [];
    const repo = new FsRepository(dir, {
      syncFilesystem: (path) => {
        calls.push(path);
        return Promise.resolve(true);
      },
    });
    await repo.put("mirrors/m/a", ReadableStream.from([new Uint8Array([1, 2])]));
    const inode = (await Deno.stat(join(dir, "mirrors/m/a"))).ino;
    await repo.capabilities.move!("mirrors/m/a", "mirrors/m/%versions/b");
    assert.equal((await Deno.stat(join(dir, "mirrors/m/%versions/b"))).ino, inode);
    await repo.capabilities.batch!.sync();
    assert.deepEqual(calls, [], "a plain move is durable on its own");
    await repo.capabilities.batch!.move("mirrors/m/%versions/b", "mirrors/m/c");
    assert.equal((await Deno.stat(join(dir, "mirrors/m/c"))).ino, inode);
    await repo.capabilities.batch!.sync();
    assert.deepEqual(calls, [dir], "the batched move's directories are synced with the batch");
  });
});

Deno.test("fs repository: partial writes are listed, and swept at once for a dead writer, else by age", async () => {
  await withTempDir(async (dir) => {
    const repo = new FsRepository(dir);
    const tmp = join(dir, ".tmp");
    await Deno.mkdir(tmp);
    for (const name of ["dead-1.part", "live-old.part", "live-new.part"]) {
      await Deno.writeTextFile(join(tmp, name), "x");
    }
    const hourAgo = new Date(Date.now() - 3_600_000);
    await Deno.utime(join(tmp, "live-old.part"), hourAgo, hourAgo);
    const partial = repo.capabilities.partialWrites!;
    assert.deepEqual(await partial.list(), [
      ".tmp/dead-1.part",
      ".tmp/live-new.part",
      ".tmp/live-old.part",
    ]);
    const asked: string[][] = [];
    const removed = await partial.sweep(60_000, (names) => {
      asked.push([...names].sort());
      return Promise.resolve(new Set(names.filter((n) => n.startsWith("dead-"))));
    });
    assert.equal(removed, 2);
    assert.deepEqual(asked, [["dead-1.part", "live-new.part", "live-old.part"]]);
    assert.deepEqual(await partial.list(), [".tmp/live-new.part"]);
    assert.deepEqual(await Array.fromAsync(repo.list("")), [], "never listed as objects");
  });
});

const CC = await new Deno.Command("sh", { args: ["-c", "command -v cc"], stdout: "piped" })
  .output().then((o) => o.success).catch(() => false);

Deno.test({
  name:
    "fs repository: on a filesystem without hard links (link(2) answers EPERM), putIfAbsent warns and looks before it renames",
  // link(2) is refused for the whole child process by an LD_PRELOAD shim, as vfat and
  // some network filesystems refuse it: no such filesystem can be mounted here.
  ignore: !CC,
  fn: () =>
    withTempDir(async (dir) => {
      await Deno.writeTextFile(
        join(dir, "nolink.c"),
        "#include <errno.h>\nint linkat(int a, const char *b, int c, const char *d, int e)" +
          " { errno = EPERM; return -1; }\nint link(const char *a, const char *b)" +
          " { errno = EPERM; return -1; }\n",
      );
      const cc = await new Deno.Command("cc", {
        args: ["-shared", "-fPIC", "-o", join(dir, "nolink.so"), join(dir, "nolink.c")],
      }).output();
      assert.ok(cc.success, new TextDecoder().decode(cc.stderr));
      const script = join(dir, "child.ts");
      const src = (p: string) => new URL(`../../src/${p}`, import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { FsRepository } from "${src("repository/fs.ts")}";
import { isObjectExists, partialWrites, putIfAbsent } from "${src("repository/capabilities.ts")}";
const repo = new FsRepository(Deno.args[0]);
const body = (t: string) => ReadableStream.from([new TextEncoder().encode(t)]);
const out: unknown[] = [];
out.push(await putIfAbsent(repo, "backups/c/k.bin", body("first")));
out.push(await putIfAbsent(repo, "backups/c/k.bin", body("second")).catch((e) => isObjectExists(e)));
out.push(new TextDecoder().decode(await new Response(await repo.get("backups/c/k.bin")).arrayBuffer()));
out.push(await partialWrites(repo).list());
console.error(JSON.stringify(out));
`,
      );
      const child = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          `--lock=${new URL("../../deno.test.lock", import.meta.url).pathname}`,
          script,
          join(dir, "repo"),
        ],
        env: { LD_PRELOAD: join(dir, "nolink.so") },
      }).output();
      const stdout = new TextDecoder().decode(child.stdout);
      const stderr = new TextDecoder().decode(child.stderr);
      assert.ok(child.success, stderr);
      const result = JSON.parse(stderr.trim().split("\n").at(-1)!);
      assert.deepEqual(result, [
        { size: 5, sha256: createHash("sha256").update("first").digest("hex") },
        true,
        "first",
        [],
      ]);
      const warnings = stdout.split("\n").filter((l) => l.includes("has no hard links"));
      assert.equal(warnings.length, 1, stdout);
    }),
});

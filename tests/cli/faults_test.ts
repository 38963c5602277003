import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { waitFor } from "../helpers/daemon.ts";
import { mountTmpfs, SKIP_FAULTS, withoutDacOverride } from "../helpers/mounts.ts";
import {
  cairn,
  CAIRN_PERMISSIONS,
  MAIN,
  makeTree,
  randomBytes,
  withTempDir,
  writeConfig,
} from "../helpers/tmp.ts";

Deno.test("fault: a client directory that cannot be read fails the job clearly", {
  ignore: SKIP_FAULTS,
}, async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "locked");
    await makeTree(src);
    await Deno.chmod(src, 0o000);
    const config = await writeConfig(dir, {
      clients: { locked: { kind: "directory", path: src } },
    });
    await Deno.chmod(dir, 0o755);
    try {
      const out = await new Deno.Command(withoutDacOverride([Deno.execPath()])[0], {
        args: [
          ...withoutDacOverride([Deno.execPath()]).slice(1),
          "run",
          ...CAIRN_PERMISSIONS,
          MAIN,
          "backup",
          "locked",
          "--config",
          config,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.match(
        stderr,
        /Cannot read the directory .*locked of client locked: permission denied/,
      );
    } finally {
      await Deno.chmod(src, 0o755);
    }
    const list = await cairn(["list", "--json", "--config", config]);
    assert.deepEqual(JSON.parse(list.stdout).backups, []);
  });
});

Deno.test("fault: a repository that is not writable fails the job with a clear error", {
  ignore: SKIP_FAULTS,
}, async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const repo = join(dir, "ro-repo");
    const unmount = await mountTmpfs(repo, { sizeBytes: 1 << 20, readOnly: true });
    try {
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
        repositoryPath: repo,
      });
      const r = await cairn(["backup", "files", "--config", config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /repository .*ro-repo is not writable/);
    } finally {
      await unmount();
    }
  });
});

Deno.test(
  "fault: disk full while writing an artifact fails cleanly; nothing partial is listed; the store stays consistent",
  { ignore: SKIP_FAULTS },
  async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      await Deno.writeFile(join(src, "random.bin"), randomBytes(3 << 20));
      const repo = join(dir, "tiny-repo");
      const unmount = await mountTmpfs(repo, { sizeBytes: 1 << 20 });
      try {
        const config = await writeConfig(dir, {
          clients: { files: { kind: "directory", path: src } },
          repositoryPath: repo,
        });
        const r = await cairn(["backup", "files", "--json", "--config", config]);
        assert.equal(r.code, 1);
        const job = JSON.parse(r.stdout);
        assert.equal(job.status, "failed");
        assert.match(
          job.error,
          /No space left on device while writing backups\/files\/.* in the repository/,
        );
        const list = await cairn(["list", "--json", "--config", config]);
        assert.deepEqual(JSON.parse(list.stdout).backups, []);
        assert.deepEqual(
          [...Deno.readDirSync(join(repo, ".tmp"))],
          [],
          "the partial file was removed, the space is back",
        );
        // The store is intact and the next (small) backup works on the same disk.
        await Deno.remove(join(src, "random.bin"));
        await Deno.writeTextFile(join(src, "small.txt"), "fits");
        const again = await cairn(["backup", "files", "--json", "--config", config]);
        assert.equal(again.code, 0, again.stderr);
        const jobs = JSON.parse((await cairn(["jobs", "--json", "--config", config])).stdout).jobs;
        assert.deepEqual(jobs.map((j: { status: string }) => j.status), ["completed", "failed"]);
      } finally {
        await unmount();
      }
    });
  },
);

Deno.test("fault: a second process opening the same JSONL store is refused at once", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const config = await writeConfig(dir, {
      clients: { files: { kind: "directory", path: src } },
      store: "jsonl",
    });
    const daemon = new Deno.Command(Deno.execPath(), {
      args: ["run", ...CAIRN_PERMISSIONS, MAIN, "daemon", "--config", config],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = daemon.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("cairn daemon started")) seen += (await reader.read()).value ?? "";
      const started = Date.now();
      const r = await cairn(["backup", "files", "--config", config]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /JSONL job store .* is in use by another process \(pid \d+\)/);
      assert.ok(Date.now() - started < 10_000, "fails at once, does not wait for the lock");
      reader.releaseLock();
    } finally {
      daemon.kill("SIGTERM");
      await daemon.status;
      await daemon.stdout.cancel().catch(() => {});
      await daemon.stderr.cancel().catch(() => {});
    }
  });
});

Deno.test("fault: a CLI backup killed with SIGKILL mid-job is finished by the daemon after lease expiry, listed once", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "big");
    await Deno.mkdir(src);
    const f = await Deno.open(join(src, "blob.bin"), { write: true, create: true });
    const chunk = randomBytes(1 << 20);
    for (let i = 0; i < 160; i++) await f.write(chunk);
    f.close();
    const config = await writeConfig(dir, {
      // gzip -9 over random bytes: a backup that takes seconds, on purpose.
      clients: {
        big: { kind: "directory", path: src, compression: "gzip", compression_level: 9 },
      },
      backup: {
        worker_lease_ttl_minutes: 0.05,
        worker_max_attempts: 3,
        execution_worker_poll_ms: 250,
      },
    });
    const cli = new Deno.Command(Deno.execPath(), {
      args: ["run", ...CAIRN_PERMISSIONS, MAIN, "backup", "big", "--config", config],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const store = await SqliteStore.open(join(dir, "cairn.db"));
    try {
      const running = await waitFor(async () => {
        const [j] = (await store.list({}, { limit: 1 })).jobs;
        return j?.status === "running" && (j.progress?.bytes_done ?? 0) > 0 ? j : null;
      }, "the CLI job to make progress");
      cli.kill("SIGKILL");
      await cli.status;
      const partial = [...Deno.readDirSync(join(dir, "repo", ".tmp"))];
      assert.ok(partial.length >= 1, "a half-written temp file is what a kill leaves");
      const daemon = new Deno.Command(Deno.execPath(), {
        args: ["run", ...CAIRN_PERMISSIONS, MAIN, "daemon", "--config", config],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const done = await waitFor(
          async () => {
            const j = await store.get(running.id);
            return j?.status === "completed" ? j : null;
          },
          "the daemon to finish the job",
          90_000,
        );
        assert.equal(done.attempts, 2, "one attempt died with the CLI, the second completed");
      } finally {
        daemon.kill("SIGTERM");
        await daemon.status;
      }
      const list = JSON.parse((await cairn(["list", "--json", "--config", config])).stdout).backups;
      assert.equal(list.length, 1, "exactly one backup, no half-written one");
      const verify = await cairn(["verify", list[0].key, "--config", config]);
      assert.equal(verify.code, 0, verify.stderr);
    } finally {
      await store.close();
    }
  });
});

Deno.test("daemon: SIGTERM stops claiming, releases a running job past the grace period, and exits 0", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "big");
    await Deno.mkdir(src);
    const f = await Deno.open(join(src, "blob.bin"), { write: true, create: true });
    const chunk = randomBytes(1 << 20);
    for (let i = 0; i < 200; i++) await f.write(chunk);
    f.close();
    const config = await writeConfig(dir, {
      clients: { big: { kind: "directory", path: src } },
      backup: { worker_max_attempts: 3 },
    });
    const store = await SqliteStore.open(join(dir, "cairn.db"));
    const job = await store.enqueue({ kind: "backup", client_name: "big", max_attempts: 3 });
    const daemon = new Deno.Command(Deno.execPath(), {
      args: ["run", ...CAIRN_PERMISSIONS, MAIN, "daemon", "--config", config],
      env: { CAIRN_SHUTDOWN_GRACE_MS: "200" },
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor(
        async () => (await store.get(job.id))?.status === "running",
        "the daemon to start the job",
      );
      daemon.kill("SIGTERM");
      const status = await daemon.status;
      assert.equal(status.code, 0);
      const released = (await store.get(job.id))!;
      assert.equal(released.status, "pending");
      assert.equal(released.attempts, 0);
      assert.equal(released.lease_token, null);
      assert.deepEqual(
        JSON.parse((await cairn(["list", "--json", "--config", config])).stdout).backups,
        [],
      );
    } finally {
      await store.close();
    }
  });
});

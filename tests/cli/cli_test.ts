import assert from "node:assert/strict";
import { join } from "node:path";
import { cairn, makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test("cli: version and usage", async () => {
  const v = await cairn(["version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^cairn \d+\.\d+\.\d+/);
  const bad = await cairn(["frobnicate"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown command: frobnicate/);
  const missing = await cairn(["backup"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Missing argument: CLIENT/);
  const flag = await cairn(["list", "--bogus"]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /bogus/);
});

Deno.test("cli: backup --json prints the finished job record alone; list and jobs see it", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const config = await writeConfig(dir, { clients: { files: { kind: "directory", path: src } } });
    const b = await cairn(["backup", "files", "--label", "weekly", "--json", "--config", config]);
    assert.equal(b.code, 0, b.stderr);
    const job = JSON.parse(b.stdout);
    for (
      const field of [
        "id",
        "kind",
        "client_name",
        "key",
        "label",
        "status",
        "attempts",
        "max_attempts",
        "progress",
        "error",
        "schedule_id",
        "created_at",
        "started_at",
        "finished_at",
        "run_after",
        "result",
      ]
    ) {
      assert.ok(field in job, `job record has ${field}`);
    }
    assert.equal(job.status, "completed");
    assert.equal(job.label, "weekly");
    assert.match(job.key, /^backups\/files\/\d{8}T\d{9}Z-weekly\.tar\.zst$/);
    assert.deepEqual(Object.keys(job.result).sort(), [
      "bytes",
      "duration_ms",
      "files",
      "key",
      "sha256",
      "size_bytes",
    ]);
    assert.equal(
      b.stdout.trim().split("\n").length,
      1,
      "one JSON object and nothing else on stdout",
    );

    const human = await cairn(["backup", "files", "--config", config]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /Backup completed: backups\/files\//);

    const list = await cairn(["list", "--json", "--config", config]);
    assert.equal(JSON.parse(list.stdout).backups.length, 2);
    const jobs = await cairn([
      "jobs",
      "--status",
      "completed",
      "--client",
      "files",
      "--limit",
      "1",
      "--json",
      "--config",
      config,
    ]);
    const listed = JSON.parse(jobs.stdout).jobs;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].status, "completed");
    const table = await cairn(["jobs", "--config", config]);
    assert.match(table.stdout, /ID\s+KIND\s+CLIENT\s+STATUS/);
    assert.equal((await cairn(["jobs", "--status", "weird", "--config", config])).code, 2);
    assert.equal(
      (await cairn(["backup", "files", "--label", "Bad Label", "--config", config])).code,
      2,
    );
  });
});

Deno.test("cli: a fresh job store pointed at an existing repository lists every backup", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const repo = join(dir, "shared-repo");
    const first = await writeConfig(join(dir), {
      clients: { files: { kind: "directory", path: src } },
      repositoryPath: repo,
    });
    assert.equal((await cairn(["backup", "files", "--config", first])).code, 0);
    assert.equal((await cairn(["backup", "files", "--config", first])).code, 0);
    const other = join(dir, "newhost");
    await Deno.mkdir(other);
    const second = await writeConfig(other, {
      clients: { files: { kind: "directory", path: src } },
      repositoryPath: repo,
      store: "jsonl",
    });
    const list = await cairn(["list", "--client", "files", "--json", "--config", second]);
    const backups = JSON.parse(list.stdout).backups;
    assert.equal(backups.length, 2);
    const restore = await cairn([
      "restore",
      backups[0].key,
      "--target",
      join(dir, "r"),
      "--json",
      "--config",
      second,
    ]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(JSON.parse(restore.stdout).status, "completed");
  });
});

Deno.test("cli: restore without --yes refuses to overwrite and says how to proceed", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const config = await writeConfig(dir, { clients: { files: { kind: "directory", path: src } } });
    const key =
      JSON.parse((await cairn(["backup", "files", "--json", "--config", config])).stdout).key;
    const refused = await cairn(["restore", key, "--config", config]);
    // A usage mistake, refused before it becomes a job: exit 2, and no restore job exists.
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /not empty: pass --yes to overwrite it/);
    const jobs = JSON.parse((await cairn(["jobs", "--json", "--config", config])).stdout).jobs;
    assert.deepEqual(jobs.map((j: { kind: string }) => j.kind), ["backup"]);
    const ok = await cairn(["restore", key, "--yes", "--config", config]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Restore completed/);
    const verify = await cairn(["verify", key, "--json", "--config", config]);
    assert.equal(verify.code, 0);
    assert.equal(JSON.parse(verify.stdout).result.sha256_ok, true);
  });
});

Deno.test("cli: unknown client and bad keys are usage errors (exit 2) naming the problem", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, { clients: { files: { kind: "directory", path: dir } } });
    const unknown = await cairn(["backup", "nope", "--config", config]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Unknown client "nope": configured clients are files/);
    for (
      const key of [
        "backups/../../etc/passwd",
        "/backups/files/20261121T020000000Z-manual.tar.gz",
        "backups/files/x.tar.gz",
      ]
    ) {
      for (const cmd of ["verify", "restore"]) {
        const r = await cairn([cmd, key, "--config", config]);
        assert.equal(r.code, 2, `${cmd} ${key}`);
        assert.match(r.stderr, /Invalid backup key/);
      }
    }
    const missing = await cairn([
      "verify",
      "backups/files/20261121T020000000Z-manual.tar.gz",
      "--config",
      config,
    ]);
    // Missing is a usage error (2), so a script can tell it from a damaged backup (1).
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Backup not found/);
  });
});

Deno.test("cli: verify of a damaged artifact is exit 1, naming the mismatch", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const config = await writeConfig(dir, { clients: { files: { kind: "directory", path: src } } });
    const key =
      JSON.parse((await cairn(["backup", "files", "--json", "--config", config])).stdout).key;
    const artifact = join(dir, "repo", key);
    const bytes = await Deno.readFile(artifact);
    bytes[bytes.length >> 1] ^= 0xff;
    await Deno.writeFile(artifact, bytes);
    const damaged = await cairn(["verify", key, "--config", config]);
    assert.equal(damaged.code, 1, damaged.stderr);
    assert.match(damaged.stderr, /sha256/);
  });
});

Deno.test("cli: a daemon whose address is taken exits 2 naming the address", async () => {
  await withTempDir(async (dir) => {
    const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const listen = `127.0.0.1:${(holder.addr as Deno.NetAddr).port}`;
      const config = await writeConfig(dir, { server: { listen } });
      const r = await cairn(["daemon", "--config", config]);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(
        r.stderr.includes(
          `cairn: Cannot listen on ${listen} (server.listen): Address already in use`,
        ),
        r.stderr,
      );
      assert.ok(!r.stderr.includes("unexpected error"));
    } finally {
      holder.close();
    }
  });
});

Deno.test("cli: a missing config file is exit 2 naming the path it tried", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nope.yaml");
    const r = await cairn(["list", "--config", path]);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(`cannot read the config file ${path}: file not found`), r.stderr);
  });
});

Deno.test("cli: config check prints the resolved config with secrets as ***, or every problem with exit 2", async () => {
  await withTempDir(async (dir) => {
    const good = join(dir, "good.yaml");
    await Deno.writeTextFile(
      good,
      `server: {admin_key: "\${ADMIN}"}
clients:
  db: {kind: postgres, url: "postgres://app:\${PW}@127.0.0.1:5432/app"}`,
    );
    const ok = await cairn(["config", "check", "--config", good], {
      env: { PW: "hunter2-pw", ADMIN: "top-admin-key" },
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(!ok.stdout.includes("hunter2-pw") && !ok.stdout.includes("top-admin-key"));
    assert.match(ok.stdout, /postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/app/);
    assert.match(ok.stdout, /admin_key: "\*\*\*"/);

    const bad = join(dir, "bad.yaml");
    await Deno.writeTextFile(
      bad,
      `backup: {worker_concurrency: lots, colour: blue}
clients:
  main_db: {kind: postgres, url: "postgres://app:\${MISSING_PW}@h:5432/app"}`,
    );
    const r = await cairn(["config", "check", "--config", bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^backup\.worker_concurrency: /m);
    assert.match(r.stderr, /^backup\.colour: unknown key/m);
    assert.match(r.stderr, /^clients\.main_db\.url: environment variable MISSING_PW is not set/m);

    const absent = await cairn(["config", "check", "--config", join(dir, "absent.yaml")]);
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, /file not found/);
    const viaEnv = await cairn(["config", "check"], {
      env: { CAIRN_CONFIG: good, PW: "x", ADMIN: "y" },
    });
    assert.equal(viaEnv.code, 0, "CAIRN_CONFIG is honoured");
  });
});

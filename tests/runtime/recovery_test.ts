/**
 * Lease owners that can be judged dead, dead-owner recovery in both stores, the
 * lease TTL's lower bound, the scratch root, and the minimal child environment.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { baseChildEnv, runCommand, spawnTool, withSecretFile } from "../../src/engines/process.ts";
import {
  formatOwner,
  initProcessId,
  parseHeadOutput,
  parseOwner,
  parseStatStart,
  parseStatState,
  processStates,
} from "../../src/io/process_id.ts";
import { Scratch } from "../../src/io/scratch.ts";
import { JsonlStore } from "../../src/store/jsonl.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import type { JobStore } from "../../src/store/store.ts";
import { deadOwners } from "../../src/runtime/recover.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";
import { filesUnder } from "../helpers/crash.ts";

Deno.test("process id: the start time is field 22 of /proc/<pid>/stat, whatever the command name holds", () => {
  const tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
  assert.equal(parseStatStart(`42 (deno) ${tail}`), "987654");
  assert.equal(parseStatStart(`42 (a ) b) (c) ${tail}`), "987654");
  assert.equal(parseStatStart("42 (deno) S 1 2"), null);
  assert.equal(parseStatStart("garbage"), null);
});

Deno.test("process id: head -v output is split per file; a missing file is simply absent", () => {
  const out = "==> /proc/1/stat <==\n1 (init) S 0\n\n==> /proc/7/stat <==\n7 (x y) R 1\n";
  assert.deepEqual(
    [...parseHeadOutput(out)],
    [["/proc/1/stat", "1 (init) S 0"], ["/proc/7/stat", "7 (x y) R 1"]],
  );
});

Deno.test("process id: owners round-trip; a live process is alive, an exited one dead, another host unknown", async () => {
  const me = await initProcessId();
  assert.notEqual(me.start, "?", "this host can tell start times");
  const owner = formatOwner(me, "n1");
  assert.deepEqual(parseOwner(owner), me);
  assert.equal(parseOwner("somehost:123:abcd"), null, "old-style owners are never judged");
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const childStat = (await runCommand("head", ["-n", "1", `/proc/${child.pid}/stat`])).stdout;
  const childId = {
    host: me.host,
    pid: child.pid,
    start: parseStatStart(new TextDecoder().decode(childStat))!,
  };
  assert.deepEqual(await processStates([me, childId]), ["alive", "alive"]);
  child.kill("SIGKILL");
  await child.status;
  assert.deepEqual(
    await processStates([
      childId,
      { ...me, start: String(Number(me.start) + 1) }, // this pid, but another start: reused
      { ...childId, host: "elsewhere/x/1" },
    ]),
    ["dead", "dead", "unknown"],
  );
  assert.deepEqual(
    [...await deadOwners([formatOwner(childId, "a"), owner, "w", null])],
    [formatOwner(childId, "a")],
  );
});

/** expireLeasesOf, settleAbandoned and key uniqueness, as every store must keep them. */
async function deadOwnerContract(store: JobStore): Promise<void> {
  const lease = { owner: "dead-one", leaseMs: 15 * 60_000 };
  const a = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 3 }, {
    claimAs: lease,
  });
  const b = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
    claimAs: { owner: "alive-one", leaseMs: 15 * 60_000 },
  });
  assert.equal(await store.claim({ owner: "w", leaseMs: 1000 }), null, "both leased");
  const expired = await store.expireLeasesOf((o) => o === "dead-one");
  assert.deepEqual(expired.map((j) => j.id), [a.id]);
  const again = await store.claim({ owner: "w", leaseMs: 1000 });
  assert.equal(again?.id, a.id, "taken back without waiting 15 minutes");
  assert.equal(again?.attempts, 2);
  assert.equal((await store.get(b.id))!.status, "running", "a live owner keeps its job");

  // A backup with a fixed key and no attempt left is not settled blindly as failed.
  const c = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
    claimAs: lease,
  });
  await store.update(c.id, c.lease_token!, { key: "backups/c/20260101T000000000Z-x.sqlite" });
  await store.expireLeasesOf((o) => o === "dead-one");
  assert.equal(await store.claim({ owner: "w", leaseMs: 1000 }), null);
  assert.equal(
    (await store.get(c.id))!.status,
    "running",
    "left for the repository to decide",
  );
  // Another backup job cannot take a key this one holds (same client, same millisecond).
  const d = await store.enqueue({ kind: "backup", client_name: "c", max_attempts: 1 }, {
    claimAs: lease,
  });
  await assert.rejects(
    () => store.update(d.id, d.lease_token!, { key: "backups/c/20260101T000000000Z-x.sqlite" }),
    (e: Error) => e.name === "KeyTakenError" && /held by job/.test(e.message),
  );
  const done = await store.settleAbandoned(c.id, c.lease_token!, { result: { key: "k" } });
  assert.equal(done.status, "completed");
  await assert.rejects(
    () => store.settleAbandoned(c.id, c.lease_token!, { error: "x" }),
    /Lost the lease/,
  );
}

for (const kind of ["sqlite", "jsonl"] as const) {
  Deno.test(`${kind} store: a dead owner's lease ends at once; the job is claimable, and a settled backup records its outcome`, async () => {
    await withTempDir(async (dir) => {
      const store: JobStore = kind === "sqlite"
        ? await SqliteStore.open(join(dir, "s.db"))
        : await JsonlStore.open(join(dir, "s.jsonl"));
      try {
        await deadOwnerContract(store);
      } finally {
        await store.close();
      }
    });
  });
}

Deno.test("postgres store: a dead owner's lease ends at once; the job is claimable, and a settled backup records its outcome", () =>
  withDatabase(async (name) => {
    const store = await PostgresStore.open(`postgres://postgres@${PG_HOST}:${PG_PORT}/${name}`);
    try {
      await deadOwnerContract(store);
    } finally {
      await store.close();
    }
  }));

Deno.test("config: a lease TTL below 0.05 minutes is refused, naming the setting and why", () => {
  for (const ttl of [0.001, 0.04]) {
    try {
      parseConfig(JSON.stringify({ backup: { worker_lease_ttl_minutes: ttl } }));
      assert.fail(`a ${ttl}-minute lease was accepted`);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      const text = error.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
      assert.match(text, /backup\.worker_lease_ttl_minutes: must be at least 0\.05 \(3 s\)/);
    }
  }
  const ok = parseConfig(JSON.stringify({ backup: { worker_lease_ttl_minutes: 0.05 } }));
  assert.equal(ok.backup.worker_lease_ttl_minutes, 0.05);
});

Deno.test("scratch: the default root is beside the store, mode 0700; an uncreatable one stops the daemon and a CLI backup with exit 2 naming it", async () => {
  await withTempDir(async (dir) => {
    const config = parseConfig(JSON.stringify({ store: { path: join(dir, "data", "cairn.db") } }));
    const { scratchRoot } = await import("../../src/config/schema.ts");
    assert.equal(scratchRoot(config), join(dir, "data", "scratch"));
    const scratch = new Scratch(scratchRoot(config));
    await scratch.prepare();
    assert.equal((await Deno.stat(scratch.root)).mode! & 0o777, 0o700);

    await Deno.writeTextFile(join(dir, "a-file"), "not a directory");
    const bad = join(dir, "a-file", "scratch");
    const path = await writeConfig(dir, {
      clients: { files: { kind: "directory", path: dir } },
      extra: "",
    });
    const text = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...text, scratch_dir: bad }));
    for (const args of [["daemon"], ["backup", "files"]]) {
      const out = await cairn([...args, "--config", path]);
      assert.equal(out.code, 2, `${args[0]}: ${out.stdout}${out.stderr}`);
      assert.ok(
        out.stderr.includes(`The scratch directory ${bad} cannot be created or written`),
        out.stderr,
      );
    }
  });
});

Deno.test("scratch: a sweep removes only dead processes' directories, never a live one's or foreign files", async () => {
  await withTempDir(async (dir) => {
    const me = await initProcessId();
    const scratch = new Scratch(join(dir, "scratch"));
    await scratch.prepare();
    const mine = await scratch.dir("sqlite-");
    await Deno.writeTextFile(join(mine, "snapshot.sqlite"), "x");
    const child = new Deno.Command("true").spawn();
    const { pid } = child;
    await child.status;
    await Deno.mkdir(join(scratch.root, `${pid}-12345`, "secret-a"), { recursive: true });
    await Deno.writeTextFile(join(scratch.root, `${pid}-12345`, "secret-a", "secret"), "pw");
    await Deno.writeTextFile(join(scratch.root, "not-ours.txt"), "keep");
    const removed = await scratch.sweep();
    assert.deepEqual(removed, [join(scratch.root, `${pid}-12345`)]);
    assert.deepEqual(await filesUnder(scratch.root), [
      `${me.pid}-${me.start}/${mine.split("/").pop()}/snapshot.sqlite`,
      "not-ours.txt",
    ]);
  });
});

const ENV_DUMP = `#!/bin/sh
env > "$ENV_OUT.$$"
if [ -n "$PGPASSFILE" ]; then cat "$PGPASSFILE" > "$ENV_OUT.$$.passfile"; fi
if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi
`;

Deno.test("children: a tool and a probe see only a minimal environment, never CAIRN_ADMIN_KEY or other secrets; a passfile lives only while its child runs", async () => {
  await withTempDir(async (dir) => {
    const script = join(dir, "envdump.sh");
    await Deno.writeTextFile(script, ENV_DUMP);
    await Deno.chmod(script, 0o755);
    const out = join(dir, "env");
    Deno.env.set("CAIRN_ADMIN_KEY", "admin-key-must-not-leak");
    Deno.env.set("APP_DB_PASSWORD", "db-secret-must-not-leak");
    try {
      // runCommand is what `--version` probes and `sync -f` use.
      const probe = await runCommand(script, ["--version"], { env: { ENV_OUT: out } });
      assert.ok(probe.success);
      const scratch = new Scratch(join(dir, "scratch"));
      await scratch.prepare();
      const tool = spawnTool(script, [], {
        env: withSecretFile({ ...baseChildEnv(), ENV_OUT: out }, {
          variable: "PGPASSFILE",
          content: "*:*:*:*:pw\n",
          scratch,
        }),
        setting: "tools.pg_dump",
      });
      assert.ok((await tool.exited).success);
      assert.deepEqual(await filesUnder(scratch.root), [], "the passfile went with its child");
      const dumps = (await filesUnder(dir)).filter((f) =>
        f.startsWith("env.") && !f.endsWith("passfile")
      );
      assert.equal(dumps.length, 2);
      for (const f of dumps) {
        const text = await Deno.readTextFile(join(dir, f));
        assert.ok(!text.includes("admin-key-must-not-leak"), text);
        assert.ok(!text.includes("db-secret-must-not-leak"), text);
        const names = text.split("\n").filter(Boolean).map((l) => l.split("=")[0]).sort();
        for (const n of names) {
          assert.ok(
            ["PATH", "LANG", "TZ", "ENV_OUT", "PGPASSFILE", "PWD", "SHLVL", "_"].includes(n),
            `unexpected variable ${n} in a child's environment`,
          );
        }
      }
      const passfile = (await filesUnder(dir)).find((f) => f.endsWith(".passfile"))!;
      assert.equal(await Deno.readTextFile(join(dir, passfile)), "*:*:*:*:pw\n");
    } finally {
      Deno.env.delete("CAIRN_ADMIN_KEY");
      Deno.env.delete("APP_DB_PASSWORD");
    }
  });
});

Deno.test({
  name:
    "children: through a real daemon, pg_dump (a script here) and its --version probe never see CAIRN_ADMIN_KEY; its passfile is gone when it exits",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { spawnDaemon, waitForJob, json } = await import("../helpers/daemon.ts");
    const { PG_HOST, PG_PORT, requirePostgres } = await import("../helpers/pg.ts");
    await requirePostgres();
    await withTempDir(async (dir) => {
      const script = join(dir, "fake_pg_dump.sh");
      const out = join(dir, "env");
      // The path is written into the script: the child sees none of the daemon's variables.
      await Deno.writeTextFile(script, ENV_DUMP.replaceAll("$ENV_OUT", out) + "exit 3\n");
      await Deno.chmod(script, 0o755);
      const path = await writeConfig(dir, {
        clients: {
          db: { kind: "postgres", url: `postgres://postgres:pw-9@${PG_HOST}:${PG_PORT}/postgres` },
        },
      });
      const text = JSON.parse(await Deno.readTextFile(path));
      await Deno.writeTextFile(
        path,
        JSON.stringify({ ...text, tools: { pg_dump: script } }),
      );
      const key = "admin-key-not-for-children";
      const d = await spawnDaemon(path, {
        adminKey: key,
        env: { CAIRN_ADMIN_KEY: key, SOME_TOKEN: "token-not-for-children" },
      });
      try {
        const text2 = JSON.parse(await Deno.readTextFile(path));
        assert.equal(text2.server.admin_key, undefined, "the key reached cairn by environment");
        const res = await d.api("/admin/backups", { method: "POST", json: { client_name: "db" } });
        const id = (await json(res)).data.job_id;
        const job = await waitForJob(d, id, ["failed", "completed"]);
        assert.equal(job.status, "failed", "the fake pg_dump exits 3");
        const dumps = (await filesUnder(dir)).filter((f) => /^env\.\d+$/.test(f));
        assert.equal(dumps.length, 2, "the --version probe and the dump");
        for (const f of dumps) {
          const env = await Deno.readTextFile(join(dir, f));
          assert.ok(!env.includes(key), `${f} saw CAIRN_ADMIN_KEY:\n${env}`);
          assert.ok(!env.includes("token-not-for-children"), env);
          assert.ok(!/^CAIRN_/m.test(env), env);
        }
        assert.ok(
          (await filesUnder(dir)).some((f) => f.endsWith(".passfile")),
          "the dump was given a passfile",
        );
        assert.deepEqual(await filesUnder(join(dir, "scratch")), [], "and it is gone");
      } finally {
        await d.stop();
      }
    });
  },
});

Deno.test("process id: a zombie (killed, not yet reaped) is dead, so a restart takes its jobs back at once", async () => {
  assert.equal(parseStatState("42 (a ) b) Z 1 2"), "Z");
  // A child that exits while its parent sleeps stays a zombie until the parent reaps it.
  const parent = new Deno.Command("python3", {
    args: [
      "-c",
      "import os,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint(pid,flush=True)\ntime.sleep(5)",
    ],
    stdout: "piped",
  }).spawn();
  const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const pid = Number((await reader.read()).value!.trim());
  try {
    let stat = "";
    for (let i = 0; i < 50 && !/\) Z /.test(stat); i++) {
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(parseStatState(stat), "Z");
    const here = await initProcessId();
    const zombie = { host: here.host, pid, start: parseStatStart(stat)! };
    assert.deepEqual(await processStates([zombie, here]), ["dead", "alive"]);
  } finally {
    parent.kill("SIGKILL");
    await parent.status;
    await reader.cancel().catch(() => {});
  }
});

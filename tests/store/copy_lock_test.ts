/**
 * `cairn store copy` against everything else that works on a store (store/use_lock.ts),
 * for each kind of source store: a running daemon and a running one-off CLI job make
 * the copy refuse, naming them; a daemon or a CLI job started during a copy refuses to
 * start ("store copy in progress"), and the copy completes with everything in it.
 *
 * A process is caught holding the lock by watching the holders the lock lists (the
 * lock file's records, or cairn_store_users joined with pg_locks) and frozen there with
 * SIGSTOP, so no test depends on how long a copy or a backup takes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as state from "../../src/jobs/state.ts";
import type { Job } from "../../src/jobs/types.ts";
import { JsonlStore } from "../../src/store/jsonl.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { SQL } from "../../src/store/postgres_sql.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import type { JobStore } from "../../src/store/store.ts";
import { fileStoreUsers, type StoreUser } from "../../src/store/use_lock.ts";
import { storeUrl } from "../helpers/cluster.ts";
import { spawnDaemon, waitFor } from "../helpers/daemon.ts";
import { pg, withDatabase } from "../helpers/pg.ts";
import {
  cairn,
  CAIRN_PERMISSIONS,
  type CliResult,
  MAIN,
  makeTree,
  withTempDir,
} from "../helpers/tmp.ts";

const slow = { sanitizeResources: false, sanitizeOps: false };
type Kind = "sqlite" | "jsonl" | "postgres";

interface Setup {
  kind: Kind;
  config: string;
  /** The source as `--from` takes it. */
  from: string;
  /** An empty target of another kind. */
  to: string;
  openSource(): Promise<JobStore>;
  openTarget(): Promise<JobStore>;
  /** Who holds the source's use lock now. */
  holders(): Promise<StoreUser[]>;
}

/** A config with one directory client and node name n1, on a store of `kind`. */
async function setup(kind: Kind, dir: string, database: string): Promise<Setup> {
  const src = join(dir, "src");
  await makeTree(src);
  const path = join(dir, kind === "sqlite" ? "cairn.db" : kind === "jsonl" ? "jobs.jsonl" : "node");
  const store = kind === "postgres" ? { kind, url: storeUrl(database), path } : { kind, path };
  const config = join(dir, "cairn.yaml");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      server: { listen: "127.0.0.1:0" },
      node: { name: "n1" },
      store,
      repository: { kind: "fs", path: join(dir, "repo") },
      backup: { worker_max_attempts: 1, execution_worker_poll_ms: 250 },
      clients: { files: { kind: "directory", path: src } },
    }),
  );
  const targetPath = join(dir, kind === "sqlite" ? "target.jsonl" : "target.db");
  const to = kind === "sqlite" ? `jsonl:${targetPath}` : `sqlite:${targetPath}`;
  return {
    kind,
    config,
    from: config,
    to,
    openSource: () =>
      kind === "sqlite"
        ? SqliteStore.open(path)
        : kind === "jsonl"
        ? JsonlStore.open(path)
        : PostgresStore.open(storeUrl(database), { max: 2 }),
    openTarget: () =>
      kind === "sqlite" ? JsonlStore.open(targetPath) : SqliteStore.open(targetPath),
    holders: async () => {
      if (kind !== "postgres") return await fileStoreUsers({ kind, path });
      const sql = pg(database);
      try {
        return (await sql.unsafe(SQL.storeUsers)).map((r) => r.holder as StoreUser);
      } catch {
        return []; // not migrated yet
      } finally {
        await sql.end();
      }
    },
  };
}

function spawnCairn(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...CAIRN_PERMISSIONS, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<CliResult> {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `cairn <args>`, killed after 60 s so that a daemon that wrongly starts cannot hang the test. */
async function cairnBounded(args: string[]): Promise<CliResult> {
  const child = spawnCairn(args);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 60_000);
  try {
    return await finish(child);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until a holder of `role` with `pid` is listed, then freezes that process. */
async function freezeHolder(s: Setup, role: StoreUser["role"], pid: number): Promise<void> {
  await waitFor(async () => {
    const found = (await s.holders()).some((h) => h.role === role && h.pid === pid);
    return found || null;
  }, `a ${role} (pid ${pid}) holding the store's use lock`);
  Deno.kill(pid, "SIGSTOP");
}

async function everyJob(store: JobStore): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list({}, { limit: 1000, cursor });
    out.push(...page.jobs);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

const withStore = <T>(fn: (dir: string, database: string) => Promise<T>) => (kind: Kind) =>
  withTempDir((dir) =>
    kind === "postgres" ? withDatabase((database) => fn(dir, database)) : fn(dir, "unused")
  );

for (const kind of ["sqlite", "jsonl", "postgres"] as const) {
  Deno.test({
    name:
      `store copy (${kind} source): refused while a daemon or a one-off CLI job works on it, naming which`,
    ...slow,
    fn: () =>
      withStore(async (dir, database) => {
        const s = await setup(kind, dir, database);
        const daemon = await spawnDaemon(s.config);
        let running = true;
        try {
          const refused = await cairn(["store", "copy", "--from", s.from, "--to", s.to]);
          assert.equal(refused.code, 2, refused.stderr);
          assert.match(
            refused.stderr,
            new RegExp(
              `The job store .* is in use by a cairn daemon \\(node n1, pid ${daemon.pid} on host [^,]+, since \\d{4}-[^)]+\\): stop the daemon or let the job finish before copying the store`,
              "s",
            ),
          );
          await daemon.stop();
          running = false;
        } finally {
          if (running) await daemon.stop();
        }

        // GNU tar behind a 3 s pause: the backup holds the lock long enough to be seen
        // holding it, however fast the machine (a small tree is stored in milliseconds).
        const slowTar = join(dir, "slow-tar");
        await Deno.writeTextFile(
          slowTar,
          '#!/bin/sh\ncase "$1" in --version) exec tar "$@";; esac\nsleep 3\nexec tar "$@"\n',
        );
        await Deno.chmod(slowTar, 0o755);
        const cli = spawnCairn(["backup", "files", "--config", s.config], {
          CAIRN_TAR_PATH: slowTar,
        });
        const done = finish(cli);
        let frozen = false;
        try {
          await freezeHolder(s, "cli", cli.pid);
          frozen = true;
          const refused = await cairn(["store", "copy", "--from", s.from, "--to", s.to]);
          assert.equal(refused.code, 2, refused.stderr);
          assert.match(
            refused.stderr,
            new RegExp(
              `is in use by a one-off \`cairn backup\` \\(pid ${cli.pid} on host [^,]+, since [^)]+\\): stop the daemon or let the job finish`,
            ),
          );
        } finally {
          if (frozen) Deno.kill(cli.pid, "SIGCONT");
        }
        const backup = await done;
        assert.equal(backup.code, 0, backup.stderr);
        // Both gone: the copy goes through, and a lock record left by either does not count.
        const ok = await cairn(["store", "copy", "--from", s.from, "--to", s.to]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, /^Copied 1 job\(s\), 0 schedule\(s\)/);
      })(kind),
  });

  Deno.test({
    name:
      `store copy (${kind} source): a daemon or CLI job started during the copy refuses (store copy in progress), and the copy completes`,
    ...slow,
    fn: () =>
      withStore(async (dir, database) => {
        const s = await setup(kind, dir, database);
        const source = await s.openSource();
        const now = Date.now();
        await source.importRecords({
          jobs: Array.from({ length: 20_000 }, (_, i) =>
            state.newJob(i + 1, {
              kind: "backup",
              client_name: "files",
              max_attempts: 1,
              run_after: now + 86_400_000, // not due: a daemon that wrongly started would not run them
            }, now - 20_000 + i)),
          schedules: [],
        });
        const expected = await everyJob(source);
        await source.close();

        const copy = spawnCairn(["store", "copy", "--from", s.from, "--to", s.to]);
        const copied = finish(copy);
        let frozen = false;
        try {
          await freezeHolder(s, "copy", copy.pid);
          frozen = true;
          const inProgress = new RegExp(
            `is locked: store copy in progress \\(\`cairn store copy\` \\(pid ${copy.pid} on host [^,]+, since [^)]+\\)\\)`,
            "s",
          );
          const daemon = await cairnBounded(["daemon", "--config", s.config]);
          assert.equal(daemon.code, 2, daemon.stderr);
          assert.match(daemon.stderr + daemon.stdout, inProgress);
          assert.match(
            daemon.stderr + daemon.stdout,
            /start the daemon when the copy has finished/,
          );
          const backup = await cairnBounded(["backup", "files", "--config", s.config]);
          assert.equal(backup.code, 2, backup.stderr);
          assert.match(backup.stderr, inProgress);
          assert.match(backup.stderr, /run the command again when the copy has finished/);
        } finally {
          if (frozen) Deno.kill(copy.pid, "SIGCONT");
        }
        const result = await copied;
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /^Copied 20000 job\(s\), 0 schedule\(s\)/);
        const target = await s.openTarget();
        try {
          assert.deepEqual(await everyJob(target), expected);
        } finally {
          await target.close();
        }
        // Nothing changed the source meanwhile either.
        const after = await s.openSource();
        try {
          assert.deepEqual(await everyJob(after), expected);
        } finally {
          await after.close();
        }
      })(kind),
  });
}

Deno.test({
  name:
    "store copy (postgres source): a copy whose lock's session is cut mid-copy writes nothing and says why",
  ...slow,
  fn: () =>
    withStore(async (dir, database) => {
      const s = await setup("postgres", dir, database);
      const source = await s.openSource();
      const now = Date.now();
      await source.importRecords({
        jobs: Array.from({ length: 20_000 }, (_, i) =>
          state.newJob(i + 1, { kind: "backup", client_name: "files", max_attempts: 1 }, now + i)),
        schedules: [],
      });
      await source.close();
      const copy = spawnCairn(["store", "copy", "--from", s.from, "--to", s.to]);
      const copied = finish(copy);
      let frozen = false;
      try {
        await freezeHolder(s, "copy", copy.pid);
        frozen = true;
        // The server ends the session that holds the copy's lock (as a cut connection would).
        const sql = pg(database);
        try {
          const cut = await sql`
            SELECT pg_terminate_backend(u.backend_pid) AS ok FROM cairn_store_users u
            JOIN pg_locks l ON l.pid = u.backend_pid AND l.locktype = 'advisory' AND l.granted
            WHERE u.holder->>'role' = 'copy'`;
          assert.deepEqual(
            cut.map((r) =>
              r.ok
            ),
            [true],
          );
        } finally {
          await sql.end();
        }
      } finally {
        if (frozen) Deno.kill(copy.pid, "SIGCONT");
      }
      const result = await copied;
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /The copy lost its lock on the job store postgres:.* \(its connection to the server was cut\), so a daemon or job may have used the store meanwhile: nothing was written; run the copy again/,
      );
      const target = await s.openTarget();
      try {
        assert.equal(await target.count({}), 0);
      } finally {
        await target.close();
      }
    })("postgres"),
});

Deno.test({
  name:
    "store use lock (postgres): a daemon whose lock session is cut takes the lock again on its next heartbeat, and says so",
  ...slow,
  fn: () =>
    withStore(async (dir, database) => {
      const s = await setup("postgres", dir, database);
      const config = JSON.parse(await Deno.readTextFile(s.config));
      config.backup.worker_lease_ttl_minutes = 0.05; // a heartbeat a second
      await Deno.writeTextFile(s.config, JSON.stringify(config));
      const daemon = await spawnDaemon(s.config);
      try {
        await waitFor(
          async () => (await s.holders()).some((h) => h.role === "daemon"),
          "the daemon listed as a holder",
        );
        const sql = pg(database);
        try {
          const cut = await sql`
            SELECT pg_terminate_backend(u.backend_pid) AS ok FROM cairn_store_users u
            JOIN pg_locks l ON l.pid = u.backend_pid AND l.locktype = 'advisory' AND l.granted
            WHERE u.holder->>'role' = 'daemon'`;
          assert.deepEqual(cut.map((r) => r.ok), [true]);
        } finally {
          await sql.end();
        }
        await waitFor(
          () =>
            Promise.resolve(
              daemon.logs.some((l) =>
                l.includes("use lock went with a cut connection; it is held")
              ),
            ),
          "the daemon's log of its lock taken again",
        );
        const holders = await s.holders();
        assert.deepEqual(holders.map((h) => [h.role, h.pid]), [["daemon", daemon.pid]]);
        const refused = await cairn(["store", "copy", "--from", s.from, "--to", s.to]);
        assert.equal(refused.code, 2, refused.stderr);
        assert.match(refused.stderr, /is in use by a cairn daemon \(node n1/);
      } finally {
        await daemon.stop();
      }
    })("postgres"),
});

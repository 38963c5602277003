import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnDaemon, waitFor } from "../helpers/daemon.ts";
import {
  logTime,
  ownerOf,
  slowTar,
  startedJobs,
  storeUrl,
  writeNodeConfig,
} from "../helpers/cluster.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { PG_PORT, withDatabase } from "../helpers/pg.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";
import { withTempDir } from "../helpers/tmp.ts";

const slow = { sanitizeResources: false, sanitizeOps: false };
// 6 s leases: renewed every 2 s; a node whose renewals fail stops 1.2 s before expiry.
const backup = { worker_lease_ttl_minutes: 0.1, execution_worker_poll_ms: 500 };

async function tree(dir: string): Promise<string> {
  const root = join(dir, "data");
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(join(root, "a.txt"), "alpha\n".repeat(1000));
  return root;
}

Deno.test({
  name: "postgres cluster: a node SIGKILLed in the middle of a backup: another node completes it",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const clients = { files: { kind: "directory", path: await tree(dir) } };
        const tools = { tar: await slowTar(dir, 3) };
        const store = await PostgresStore.open(storeUrl(database), { max: 2 });
        const a = await spawnDaemon(
          await writeNodeConfig(dir, database, { name: "a", clients, tools, backup }),
        );
        const b = await spawnDaemon(
          await writeNodeConfig(dir, database, { name: "b", clients, tools, backup }),
        );
        try {
          const ownerA = await waitFor(() => ownerOf(store, "a"), "node a registered");
          let job = await store.enqueue({ kind: "backup", client_name: "files", max_attempts: 3 });
          job = await waitFor(async () => {
            const j = (await store.get(job.id))!;
            return j.status === "running" ? j : null;
          }, "the job to start");
          const victim = job.lease_owner === ownerA ? a : b;
          const survivor = victim === a ? b : a;
          await new Promise((r) => setTimeout(r, 1000)); // mid-backup: tar is sleeping
          await victim.stop("SIGKILL");
          const done = await waitFor(
            async () => {
              const j = (await store.get(job.id))!;
              return j.status === "completed" ? j : null;
            },
            "another node to complete the job",
            60_000,
          );
          assert.equal(done.attempts, 2, "the second attempt, on the other node, completed it");
          assert.ok(startedJobs(survivor).includes(job.id), "the survivor ran it");
          assert.match(done.key!, /^backups\/files\//);
        } finally {
          await Promise.all([a.stop("SIGKILL"), b.stop()]);
          await store.close();
        }
      })
    ),
});

Deno.test({
  name:
    "postgres cluster: a node partitioned from the database stops its job before its lease can be taken over",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const clients = { files: { kind: "directory", path: await tree(dir) } };
        const tools = { tar: await slowTar(dir, 12) };
        const proxy = startTcpProxy(PG_PORT);
        const store = await PostgresStore.open(storeUrl(database), { max: 2 });
        const a = await spawnDaemon(
          await writeNodeConfig(dir, database, {
            name: "a",
            clients,
            tools,
            backup,
            url: `postgres://postgres@127.0.0.1:${proxy.port}/${database}`,
          }),
        );
        let b: Awaited<ReturnType<typeof spawnDaemon>> | null = null;
        try {
          const job = await store.enqueue({
            kind: "backup",
            client_name: "files",
            max_attempts: 3,
          });
          await waitFor(
            async () => (await store.get(job.id))!.status === "running",
            "a to start it",
          );
          // b joins once a holds the job, with a fast tar so that its attempt completes.
          b = await spawnDaemon(
            await writeNodeConfig(dir, database, {
              name: "b",
              clients,
              backup,
            }),
          );
          await new Promise((r) => setTimeout(r, 2500)); // at least one renewal went through
          proxy.cut();
          const cutAt = Date.now();
          const done = await waitFor(
            async () => {
              const j = (await store.get(job.id))!;
              return j.status === "completed" ? j : null;
            },
            "b to take the job over and complete it",
            60_000,
          );
          assert.equal(done.attempts, 2);
          const stoppedA = logTime(
            a,
            "Job stopped: its lease could not be renewed and would expire",
            job.id,
          );
          const startedB = logTime(b, "Job started", job.id);
          assert.ok(stoppedA !== null, `a stopped its job:\n${a.logs.join("\n")}`);
          assert.ok(startedB !== null, "b started it");
          assert.ok(
            stoppedA < startedB,
            `a stopped at ${new Date(stoppedA).toISOString()}, before b started at ${
              new Date(startedB).toISOString()
            }`,
          );
          // The lease is 6 s: a stops 1.2 s before it would end, counted from its last renewal.
          assert.ok(stoppedA - cutAt < 6000, `a stopped ${stoppedA - cutAt} ms after the cut`);
        } finally {
          await a.stop("SIGKILL");
          await b?.stop();
          await proxy.stop();
          await store.close();
        }
      })
    ),
});

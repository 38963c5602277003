import assert from "node:assert/strict";
import { join } from "node:path";
import { nextRunAt } from "../../src/jobs/cron.ts";
import { json, waitFor } from "../helpers/daemon.ts";
import { startCluster, startedJobs } from "../helpers/cluster.ts";
import { withDatabase } from "../helpers/pg.ts";
import { withTempDir } from "../helpers/tmp.ts";

const slow = { sanitizeResources: false, sanitizeOps: false };

async function smallTree(dir: string): Promise<string> {
  const root = join(dir, "data");
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(join(root, "a.txt"), "alpha\n");
  return root;
}

Deno.test({
  name: "postgres cluster: three daemons, 500 quick jobs, each ran exactly once",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const root = await smallTree(dir);
        const clients = { files: { kind: "directory", path: root } };
        const cluster = await startCluster(dir, database, [
          { name: "n1", clients },
          { name: "n2", clients },
          { name: "n3", clients },
        ]);
        try {
          const ids: number[] = [];
          for (let i = 0; i < 500; i++) {
            ids.push(
              (await cluster.store.enqueue({
                kind: "backup",
                client_name: "files",
                label: `q${i}`,
                max_attempts: 2,
              })).id,
            );
          }
          await waitFor(
            async () => (await cluster.store.count({ status: "completed" })) === 500,
            "500 completed jobs",
            240_000,
          );
          const runs = [...cluster.nodes.values()].flatMap(startedJobs);
          assert.equal(runs.length, 500, "500 attempts in all");
          assert.deepEqual([...new Set(runs)].sort((a, b) => a - b), ids, "each job once");
          for (const [name, d] of cluster.nodes) {
            assert.ok(startedJobs(d).length > 0, `${name} took part`);
          }
          const jobs = (await cluster.store.list({}, { limit: 1000 })).jobs;
          assert.ok(jobs.every((j) => j.attempts === 1), "no job needed a second attempt");
        } finally {
          await cluster.stop();
        }
      })
    ),
});

Deno.test({
  name:
    "postgres cluster: a node-local client runs only on its node; a client no node declares stays pending and status says so",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const root = await smallTree(dir);
        const shared = { kind: "directory", path: root };
        const cluster = await startCluster(dir, database, [
          { name: "n1", clients: { shared } },
          { name: "n2", clients: { shared } },
          // n3 configures "nowhere" but does not declare it: it runs only what it lists.
          {
            name: "n3",
            clients: { shared, local3: shared, nowhere: shared },
            nodeClients: ["shared", "local3"],
          },
        ]);
        try {
          const local: number[] = [];
          for (let i = 0; i < 12; i++) {
            local.push(
              (await cluster.store.enqueue({
                kind: "backup",
                client_name: "local3",
                max_attempts: 1,
              }))
                .id,
            );
            await cluster.store.enqueue({ kind: "backup", client_name: "shared", max_attempts: 1 });
          }
          const stuck = await cluster.store.enqueue({
            kind: "backup",
            client_name: "nowhere",
            max_attempts: 1,
          });
          await waitFor(
            async () => (await cluster.store.count({ status: "completed" })) === 24,
            "24 completed jobs",
            120_000,
          );
          const n3 = startedJobs(cluster.nodes.get("n3")!);
          for (const id of local) assert.ok(n3.includes(id), `job ${id} of local3 ran on n3`);
          for (const name of ["n1", "n2"]) {
            const ran = startedJobs(cluster.nodes.get(name)!);
            assert.deepEqual(
              ran.filter((id) => local.includes(id)),
              [],
              `${name} ran no local3 job`,
            );
          }
          assert.equal((await cluster.store.get(stuck.id))!.status, "pending");
          const status = (await json(await cluster.nodes.get("n1")!.api("/admin/status")))
            .data;
          assert.deepEqual(status.unrunnable, [{
            client: "nowhere",
            pending_jobs: 1,
            declared_by_down_nodes: [],
            message: "no node can run client nowhere: no node declares it (node.clients)",
          }]);
          assert.deepEqual(
            status.nodes.map((n: { name: string; state: string; clients: string[] }) => [
              n.name,
              n.state,
              n.clients,
            ]),
            [["n1", "live", ["shared"]], ["n2", "live", ["shared"]], [
              "n3",
              "live",
              ["local3", "shared"],
            ]],
          );
          assert.equal(status.node, "n1");
        } finally {
          await cluster.stop();
        }
      })
    ),
});

Deno.test({
  name: "postgres cluster: a schedule fires once per due time across three daemons",
  ...slow,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        const root = await smallTree(dir);
        const clients = { files: { kind: "directory", path: root } };
        const cluster = await startCluster(dir, database, [
          { name: "n1", clients },
          { name: "n2", clients },
          { name: "n3", clients },
        ]);
        try {
          const cron = "*/2 * * * * *";
          const s = await cluster.store.createSchedule({
            client_name: "files",
            cron,
            timezone: "UTC",
            label: "every2s",
            enabled: true,
            retention: {},
            next_run_at: Date.now() - 3600_000, // missed for an hour: one job, then every 2 s
          });
          await new Promise((r) => setTimeout(r, 9000));
          await cluster.store.updateSchedule(s.id, { enabled: false });
          const jobs = (await cluster.store.list({ schedule_id: s.id, kind: "backup" }, {
            limit: 100,
          })).jobs.sort((a, b) => a.created_at - b.created_at);
          assert.ok(jobs.length >= 3, `fired ${jobs.length} times in 9 s`);
          assert.ok(jobs.length <= 6, `fired ${jobs.length} times in 9 s (at most one per 2 s)`);
          for (let i = 1; i < jobs.length; i++) {
            const due = nextRunAt(cron, "UTC", new Date(jobs[i - 1].created_at))!.getTime();
            assert.ok(
              due <= jobs[i].created_at,
              `job ${jobs[i].id} fired for a new due time, not again for ${
                new Date(due - 2000).toISOString()
              }`,
            );
          }
          const firedBy = [...cluster.nodes.values()].map((d) =>
            d.logs.filter((l) => l.includes('"msg":"Schedule fired"')).length
          );
          assert.equal(firedBy.reduce((a, b) => a + b, 0), jobs.length, "one firing per job");
        } finally {
          await cluster.stop();
        }
      })
    ),
});

import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { ScheduleWorker } from "../../src/runtime/scheduler.ts";
import { openServices, type Services } from "../../src/runtime/services.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { withTempDir } from "../helpers/tmp.ts";

async function node(dir: string, database: string, name: string): Promise<Services> {
  configureLog({ to: () => {} });
  return await openServices(parseConfig(JSON.stringify({
    node: { name },
    store: {
      kind: "postgres",
      url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${database}`,
      path: `${dir}/${name}`,
    },
    repository: { kind: "fs", path: `${dir}/repo` },
    clients: { files: { kind: "directory", path: dir } },
  })));
}

Deno.test({
  name:
    "postgres cluster: two daemons starting together after a long outage fire each due schedule once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database, sql) => {
        const a = await node(dir, database, "a");
        const b = await node(dir, database, "b");
        try {
          const ids: number[] = [];
          for (let i = 0; i < 25; i++) {
            const s = await a.store.createSchedule({
              client_name: "files",
              cron: i % 2 ? "* * * * *" : "0 * * * *",
              timezone: "UTC",
              label: `s${i}`,
              enabled: true,
              retention: {},
              next_run_at: Date.now() - 3 * 86400_000, // three days of missed occurrences
            });
            ids.push(s.id);
          }
          const workers = [a, b].map((svc) =>
            new ScheduleWorker(svc, { pollMs: 60_000, onEnqueued: () => {} })
          );
          // Both start at once, and tick again and again while the other does.
          for (let round = 0; round < 5; round++) {
            await Promise.all(workers.flatMap((w) => [w.fireDue(), w.fireDue()]));
          }
          const rows = await sql<{ schedule_id: string; n: number }[]>`
            SELECT schedule_id, count(*)::int AS n FROM cairn_jobs GROUP BY schedule_id ORDER BY schedule_id`;
          assert.deepEqual(
            rows.map((r) => [Number(r.schedule_id), r.n]),
            ids.map((id) => [id, 1]),
            "one job per schedule for its one due time",
          );
          for (const id of ids) {
            const s = (await a.store.getSchedule(id))!;
            assert.ok(s.next_run_at! > Date.now(), `schedule ${id} moved on to the future`);
          }
          await Promise.all(workers.map((w) => w.stop()));
        } finally {
          await a.store.close();
          await b.store.close();
        }
      })
    ),
});

Deno.test({
  name:
    "postgres cluster: a node whose clock runs behind the store's never fires one occurrence twice",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir((dir) =>
      withDatabase(async (database) => {
        configureLog({ to: () => {} });
        // The store's clock (the database's) is 30 s ahead of this node's.
        const svc = await openServices(
          parseConfig(JSON.stringify({
            store: {
              kind: "postgres",
              url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${database}`,
              path: `${dir}/n`,
            },
            repository: { kind: "fs", path: `${dir}/repo` },
            clients: { files: { kind: "directory", path: dir } },
          })),
          { now: () => Date.now() + 30_000 },
        );
        try {
          const every10s = "*/10 * * * * *";
          const { nextRunAt } = await import("../../src/jobs/cron.ts");
          const first = nextRunAt(every10s, "UTC", new Date())!.getTime();
          const s = await svc.store.createSchedule({
            client_name: "files",
            cron: every10s,
            timezone: "UTC",
            label: "x",
            enabled: true,
            retention: {},
            next_run_at: first, // due by the store's clock, not yet by this node's
          });
          const worker = new ScheduleWorker(svc, { pollMs: 60_000, onEnqueued: () => {} });
          assert.equal((await worker.fireDue()).length, 1);
          const after = (await svc.store.getSchedule(s.id))!.next_run_at!;
          assert.equal(after, first + 10_000, "moved past the occurrence it fired");
          await worker.stop();
        } finally {
          await svc.store.close();
        }
      })
    ),
});

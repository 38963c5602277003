import assert from "node:assert/strict";
import { PostgresStore } from "../../src/store/postgres.ts";
import { MIGRATIONS } from "../../src/store/postgres_sql.ts";
import {
  dropDatabase,
  pg,
  PG_HOST,
  PG_PORT,
  requirePostgres,
  withDatabase,
} from "../helpers/pg.ts";
import { storeConformance } from "./conformance.ts";

/** Each conformance test gets a database of its own, named after its temporary directory. */
const databases = new Map<string, string>();

export function pgUrl(database: string): string {
  return `postgres://postgres@${PG_HOST}:${PG_PORT}/${database}`;
}

storeConformance(
  "postgres",
  async (dir, options) => {
    let name = databases.get(dir);
    if (!name) {
      await requirePostgres();
      name = `cairn_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
      const admin = pg();
      await admin.unsafe(`CREATE DATABASE "${name}"`);
      await admin.end();
      databases.set(dir, name);
    }
    return PostgresStore.open(pgUrl(name), { ...options, max: 4 });
  },
  async (dir) => {
    const name = databases.get(dir);
    databases.delete(dir);
    if (name) await dropDatabase(name);
  },
);

Deno.test({
  name: "postgres store: daemons starting together migrate once (advisory lock)",
  sanitizeResources: false,
  fn: () =>
    withDatabase(async (name, sql) => {
      const stores = await Promise.all(
        Array.from({ length: 4 }, () => PostgresStore.open(pgUrl(name), { max: 2 })),
      );
      const rows = await sql`SELECT version FROM cairn_migrations ORDER BY version`;
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((_, i) => i + 1));
      await Promise.all(stores.map((s) => s.close()));
    }),
});

Deno.test({
  name:
    "postgres store: an enqueue on one node wakes a listener on another at once (LISTEN/NOTIFY)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDatabase(async (name) => {
      const a = await PostgresStore.open(pgUrl(name), { max: 2 });
      const b = await PostgresStore.open(pgUrl(name), { max: 2 });
      try {
        const heard: Array<string | null> = [];
        let resolve!: () => void;
        const woke = new Promise<void>((r) => (resolve = r));
        await a.onJobPending((client) => (heard.push(client), resolve()));
        const t0 = performance.now();
        await b.enqueue({ kind: "backup", client_name: "db1", max_attempts: 1 });
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          woke,
          new Promise((_, rej) => (timer = setTimeout(() =>
            rej(new Error("no NOTIFY in 2 s")), 2000))
          ),
        ]).finally(() => clearTimeout(timer));
        assert.deepEqual(heard, ["db1"]);
        assert.ok(performance.now() - t0 < 2000);
      } finally {
        await a.close();
        await b.close();
      }
    }),
});

Deno.test({
  name: "postgres store: claim takes only jobs of the clients the node declares (or of no client)",
  sanitizeResources: false,
  fn: () =>
    withDatabase(async (name) => {
      const s = await PostgresStore.open(pgUrl(name), { max: 2 });
      try {
        const local = await s.enqueue({
          kind: "backup",
          client_name: "local-dir",
          max_attempts: 1,
        });
        const shared = await s.enqueue({ kind: "backup", client_name: "db", max_attempts: 1 });
        const lease = { owner: "n1", leaseMs: 60_000 };
        assert.equal((await s.claim(lease, { clients: ["db"] }))?.id, shared.id);
        assert.equal(await s.claim(lease, { clients: ["db"] }), null, "local-dir is not ours");
        assert.equal((await s.claim(lease, { clients: ["local-dir"] }))?.id, local.id);
        const prune = await s.enqueue({ kind: "prune", client_name: null, max_attempts: 1 });
        assert.equal((await s.claim(lease, { clients: [] }))?.id, prune.id);
      } finally {
        await s.close();
      }
    }),
});

Deno.test({
  name: "postgres store: a server that is not there is STORE_UNAVAILABLE, the password masked",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    await assert.rejects(
      PostgresStore.open(`postgres://cairn:hunter2-secret@127.0.0.1:${port}/cairn`),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "STORE_UNAVAILABLE");
        assert.match(e.message, /postgres:\/\/cairn:\*\*\*@127\.0\.0\.1/);
        assert.ok(!e.message.includes("hunter2-secret"), e.message);
        return true;
      },
    );
  },
});

Deno.test({
  name:
    "postgres store: a schema-2 store (before the outbox) migrates: its schedules read as auto-pruned backup schedules",
  sanitizeResources: false,
  fn: () =>
    withDatabase(async (name, sql) => {
      // The store as the previous cairn left it: migrations 1 and 2 only.
      await sql.unsafe(
        "CREATE TABLE cairn_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
      );
      for (let v = 0; v < 2; v++) {
        await sql.unsafe(MIGRATIONS[v]);
        await sql.unsafe(`INSERT INTO cairn_migrations (version) VALUES (${v + 1})`);
      }
      await sql.unsafe(`INSERT INTO cairn_schedules (client_name, cron, timezone, label, enabled,
        retention, next_run_at, created_at, updated_at)
        VALUES ('c1', '0 * * * *', 'UTC', 'old', true, '{"keep_last":2}', 5, 1, 1)`);
      const store = await PostgresStore.open(pgUrl(name), { max: 2 });
      try {
        const [s] = await store.listSchedules();
        assert.deepEqual([s.label, s.kind, s.config_owned, s.auto_prune], [
          "old",
          "backup",
          false,
          true,
        ]);
        assert.deepEqual(s.retention, { keep_last: 2 });
        assert.equal(
          (await store.enqueueDelivery({
            channel: "hook",
            event: "job_failed",
            dedupe_key: "job_failed:1",
            payload: {},
            max_attempts: 3,
          })).created,
          true,
        );
      } finally {
        await store.close();
      }
    }),
});

Deno.test({
  name:
    "postgres store: two nodes claiming the outbox together never take one delivery twice (SKIP LOCKED)",
  sanitizeResources: false,
  fn: () =>
    withDatabase(async (name) => {
      const [a, b] = await Promise.all([
        PostgresStore.open(pgUrl(name), { max: 4 }),
        PostgresStore.open(pgUrl(name), { max: 4 }),
      ]);
      try {
        // Both nodes detect every event: each is added once.
        const made = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            [a, b].map((s) =>
              s.enqueueDelivery({
                channel: "hook",
                event: "job_failed",
                dedupe_key: `job_failed:${i}`,
                payload: { i },
                max_attempts: 3,
              })
            )).flat(),
        );
        assert.equal(made.filter((m) => m.created).length, 200);
        const claimed: number[] = [];
        for (;;) {
          const batches = await Promise.all(
            [a, b, a, b].map((s) => s.claimDeliveries(7, 60_000)),
          );
          const ids = batches.flat().map((d) => d.id);
          if (ids.length === 0) break;
          claimed.push(...ids);
        }
        assert.equal(claimed.length, 200, "every delivery claimed");
        assert.equal(new Set(claimed).size, 200, "none twice");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    }),
});

Deno.test({
  name:
    "postgres store: a finish starts from the row as it is now, not as the claim returned it (a cancel requested on another node meanwhile)",
  sanitizeResources: false,
  fn: () =>
    withDatabase(async (name) => {
      const a = await PostgresStore.open(pgUrl(name), { max: 2 });
      const b = await PostgresStore.open(pgUrl(name), { max: 2 });
      try {
        await b.enqueue({ kind: "backup", client_name: "db1", max_attempts: 3 });
        const claimed = (await a.claim({ owner: "a", leaseMs: 60_000 }))!;
        await b.requestCancel(claimed.id);
        const done = await a.complete(claimed.id, claimed.lease_token!, { ok: 1 });
        assert.equal(done.status, "completed");
        // The flag set after the claim survives the finish: the claim's copy of the row was not written back.
        assert.equal(done.cancel_requested, true);
        assert.equal((await b.get(claimed.id))!.cancel_requested, true);
        assert.deepEqual((await b.get(claimed.id))!.result, { ok: 1 });

        // A lease taken over by another node: the first holder's finish is refused.
        const second = await b.enqueue({ kind: "backup", client_name: "db1", max_attempts: 3 });
        const first = (await a.claim({ owner: "a", leaseMs: 1 }, { id: second.id }))!;
        // Each store follows the database clock from its own reading: retried until b sees it expired.
        let taken = null;
        for (let i = 0; i < 100 && !taken; i++) {
          await new Promise((r) => setTimeout(r, 50));
          taken = await b.claim({ owner: "b", leaseMs: 60_000 }, { id: second.id });
        }
        assert.ok(taken, "the expired lease was taken over");
        assert.notEqual(taken.lease_token, first.lease_token);
        await assert.rejects(
          a.complete(first.id, first.lease_token!, {}),
          (e: Error) => e.name === "LeaseLostError",
        );
        assert.equal((await b.complete(taken.id, taken.lease_token!, {})).status, "completed");
      } finally {
        await a.close();
        await b.close();
      }
    }),
});

Deno.test({
  name:
    "postgres store: a use lock lost with its session is taken again on keep(), unless a copy took the store meanwhile",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDatabase(async (name, sql) => {
      const a = await PostgresStore.open(pgUrl(name), { max: 2 });
      const b = await PostgresStore.open(pgUrl(name), { max: 2 });
      const user = (role: "daemon" | "copy") => ({
        role,
        command: role === "daemon" ? "daemon" : "store copy",
        pid: Deno.pid,
        host: "h",
        since: 0,
      });
      const cut = async (role: string) => {
        const rows = await sql`
          SELECT pg_terminate_backend(u.backend_pid) AS ok FROM cairn_store_users u
          JOIN pg_locks l ON l.pid = u.backend_pid AND l.locktype = 'advisory' AND l.granted
          WHERE u.holder->>'role' = ${role}`;
        assert.deepEqual(rows.map((r) => r.ok), [true]);
      };
      try {
        const daemon = await a.holdUse(user("daemon"), false);
        assert.ok("release" in daemon);
        assert.equal(await daemon.keep!(), "held");
        await cut("daemon");
        assert.equal(await daemon.held!(), false);
        assert.equal(await daemon.keep!(), "retaken");
        assert.equal(await daemon.held!(), true);
        const refused = await b.holdUse(user("copy"), true);
        assert.deepEqual(refused, { holders: [user("daemon")] });

        await cut("daemon");
        const copy = await b.holdUse(user("copy"), true);
        assert.ok("release" in copy);
        assert.equal(await daemon.keep!(), "refused");
        await copy.release();
        assert.equal(await daemon.keep!(), "retaken");
        await daemon.release();
      } finally {
        await a.close();
        await b.close();
      }
    }),
});

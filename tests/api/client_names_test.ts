import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { requireClient } from "../../src/runtime/services.ts";
import { testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

/** Names that are properties of every plain object, so `clients[name]` found "something". */
const PROTO_NAMES = [
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "__defineGetter__",
  "__proto__",
  "isPrototypeOf",
  "propertyIsEnumerable",
];

Deno.test("client names: requireClient looks names up as own keys; Object.prototype's names are unknown", () => {
  const config = { clients: { app: { kind: "directory", path: "/x" } } } as never;
  assert.equal(requireClient(config, "app").kind, "directory");
  for (const name of PROTO_NAMES) {
    assert.throws(() => requireClient(config, name), (e: Error & { code?: string }) => {
      assert.equal(e.code, "UNKNOWN_CLIENT", name);
      assert.match(e.message, /Unknown client/);
      return true;
    });
  }
});

Deno.test("client names: the API answers 400 UNKNOWN_CLIENT for prototype names in the body, the x-athena-client header, schedules and prune", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { app: { kind: "directory", path: dir } });
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        app.request(path, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(body),
        });
      const expect400 = async (res: Response, what: string) => {
        const body = await res.json();
        assert.equal(res.status, 400, `${what}: ${JSON.stringify(body)}`);
        assert.equal(body.code, "UNKNOWN_CLIENT", what);
      };
      const schedule = { cron: "0 2 * * *" };
      for (const name of PROTO_NAMES) {
        // "__proto__" in a JSON body is an own property once parsed: JSON.parse says so.
        const bodyOf = (extra: object) =>
          JSON.parse(
            JSON.stringify({ ...extra }).replace(
              /^\{/,
              `{"client_name":${JSON.stringify(name)}${Object.keys(extra).length ? "," : ""}`,
            ),
          );
        await expect400(await post("/admin/backups", bodyOf({})), `backup ${name}`);
        await expect400(
          await post("/admin/backups", {}, { "x-athena-client": name }),
          `backup via header ${name}`,
        );
        await expect400(
          await post("/admin/backups/schedules", bodyOf(schedule)),
          `schedule ${name}`,
        );
        await expect400(
          await post("/admin/backups/schedules", schedule, { "x-athena-client": name }),
          `schedule via header ${name}`,
        );
        await expect400(await post("/admin/backups/prune", bodyOf({})), `prune ${name}`);
      }
      // A schedule's client changed to such a name is refused as well.
      const created = await post("/admin/backups/schedules", { ...schedule, client_name: "app" });
      assert.equal(created.status, 201);
      const id = (await created.json()).data.id;
      for (const name of PROTO_NAMES) {
        const res = await app.request(`/admin/backups/schedules/${id}`, {
          method: "PATCH",
          headers: { "content-type": "application/json" },
          body: `{"client_name":${JSON.stringify(name)}}`,
        });
        await expect400(res, `patch schedule ${name}`);
      }
      // Nothing was queued or scheduled for any of them.
      assert.equal((await services.store.stats()).total, 0);
      assert.equal((await services.store.listSchedules()).length, 1);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("client names: a config client called __proto__ is refused by name, not silently dropped", async () => {
  const { ConfigError, parseConfig } = await import("../../src/config/load.ts");
  try {
    parseConfig("clients:\n  __proto__:\n    kind: directory\n    path: /tmp\n");
    assert.fail("accepted");
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(
      error.problems.map((p) => `${p.path}: ${p.message}`).join("\n"),
      /__proto__ cannot be a client name/,
    );
  }
  // "constructor" is a name like any other: configured, it is found by lookup.
  const config = parseConfig("clients:\n  constructor:\n    kind: directory\n    path: /tmp\n");
  assert.equal(requireClient(config, "constructor").kind, "directory");
});

Deno.test("names: SQLite tables called __proto__ and constructor are counted, and a backup of them verifies", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  const { join } = await import("node:path");
  const { run } = await import("../helpers/services.ts");
  await withTempDir(async (dir) => {
    const path = join(dir, "odd.db");
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE "__proto__" (x); INSERT INTO "__proto__" VALUES (1), (2);`);
    db.exec(`CREATE TABLE "constructor" (x); INSERT INTO "constructor" VALUES (1);`);
    db.close();
    const services = await testServices(dir, { odd: { kind: "sqlite", path } });
    try {
      const backup = await run(services, { kind: "backup", client_name: "odd" });
      assert.equal(backup.status, "completed", backup.error ?? "");
      const key = String(backup.result!.key);
      const manifest = JSON.parse(
        await Deno.readTextFile(join(dir, "repo", key + ".manifest.json")),
      );
      assert.deepEqual(Object.entries(manifest.facts.tables), [["__proto__", 2], [
        "constructor",
        1,
      ]]);
      const verify = await run(services, { kind: "verify", client_name: "odd", key });
      assert.equal(verify.status, "completed", verify.error ?? "");
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("names: DLQ stats count a client called constructor from zero", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { constructor: { kind: "directory", path: dir } });
    try {
      const job = await services.store.enqueue({
        kind: "backup",
        client_name: "constructor",
        max_attempts: 1,
      }, { claimAs: { owner: "w", leaseMs: 60_000 } });
      await services.store.fail(job.id, job.lease_token!, "boom", { retryDelayMs: 0 });
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const stats = (await (await app.request("/admin/backups/dlq/stats")).json()).data;
      assert.deepEqual(stats.by_client, { constructor: 1 });
    } finally {
      await services.store.close();
    }
  });
});

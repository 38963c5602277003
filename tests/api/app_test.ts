import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { configureLog } from "../../src/log.ts";
import { withTempDir } from "../helpers/tmp.ts";
import { testServices } from "../helpers/services.ts";

Deno.test("app: an unexpected exception is a 500 INTERNAL with no stack in the body, and its stack is logged", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {});
    const logs: string[] = [];
    try {
      const broken = {
        ...services,
        store: Object.assign(Object.create(Object.getPrototypeOf(services.store)), services.store),
      };
      broken.store.list = () => Promise.reject(new Error("disk controller on fire"));
      configureLog({ to: (l) => logs.push(l) });
      const app = createApp({
        services: broken,
        pool: null,
        scheduler: null,
        startedAt: Date.now(),
      });
      const res = await app.request("/admin/backups/jobs");
      assert.equal(res.status, 500);
      const body = await res.json();
      assert.equal(body.code, "INTERNAL");
      assert.equal(body.status, "error");
      assert.ok(!JSON.stringify(body).includes("disk controller"), "the cause stays in the log");
      assert.ok(!JSON.stringify(body).includes("at "), "no stack trace");
      assert.ok(logs.some((l) => l.includes("disk controller on fire") && l.includes('"stack"')));
    } finally {
      configureLog({ to: () => {} });
      await services.store.close();
    }
  });
});

Deno.test("app: secrets never appear in API responses", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {
      db: { kind: "postgres", url: "postgres://app:very-secret-pw@127.0.0.1:5432/app" },
      bucket: {
        kind: "s3",
        endpoint: "http://127.0.0.1:9000",
        bucket: "src",
        access_key_id: "AKIA-TEST",
        secret_access_key: "s3cr3t-key-value",
      },
    });
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const clients = await (await app.request("/admin/clients")).text();
      for (const s of ["very-secret-pw", "s3cr3t-key-value", "AKIA-TEST"]) {
        assert.ok(!clients.includes(s), `${s} leaked: ${clients}`);
      }
      assert.match(clients, /postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/app/);
      // A restore target carrying a password is masked in the job record too.
      const job = await services.store.enqueue({
        kind: "restore",
        client_name: "db",
        key: "k",
        max_attempts: 1,
        params: { target: "redis://:very-secret-pw@h:6379" },
      });
      const text = await (await app.request(`/admin/backups/jobs/${job.id}`)).text();
      assert.ok(!text.includes("very-secret-pw"), text);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("app: without an admin key configured (loopback only) the API is open; with one, it is enforced", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {});
    try {
      const open = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      assert.equal((await open.request("/admin/status")).status, 200);
      const locked = createApp({
        services: {
          ...services,
          config: { ...services.config, server: { ...services.config.server, admin_key: "k" } },
        },
        pool: null,
        scheduler: null,
        startedAt: Date.now(),
      });
      assert.equal((await locked.request("/admin/status")).status, 401);
      assert.equal(
        (await locked.request("/admin/status", { headers: { authorization: "Bearer k" } })).status,
        200,
      );
      assert.equal((await locked.request("/admin/health")).status, 200);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("app: keys are URL-decoded exactly once; a double-encoded key is refused", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {});
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const once = await app.request(
        "/admin/backups/backups%2Ffiles%2F20261121T020000000Z-manual.tar.gz/download",
      );
      assert.equal(
        (await once.json()).code,
        "BACKUP_NOT_FOUND",
        "a valid key, singly encoded, is looked up",
      );
      const twice = await app.request(
        "/admin/backups/backups%252Ffiles%252F20261121T020000000Z-manual.tar.gz/download",
      );
      assert.equal(twice.status, 400);
      assert.equal((await twice.json()).code, "INVALID_KEY");
    } finally {
      await services.store.close();
    }
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { allowedMethods, patternRegExp } from "../../src/api/methods.ts";
import { plural } from "../../src/plural.ts";
import { testServices } from "../helpers/services.ts";
import { makeTree, withTempDir } from "../helpers/tmp.ts";

async function withApp(fn: (app: ReturnType<typeof createApp>) => Promise<void>) {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    try {
      await fn(createApp({ services, pool: null, scheduler: null, startedAt: Date.now() }));
    } finally {
      await services.store.close();
    }
  });
}

function post(app: ReturnType<typeof createApp>, path: string, body?: unknown) {
  return app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

Deno.test("api: enqueue messages are Athena's, and every enqueue returns job_id", async () => {
  await withApp(async (app) => {
    const backup = await (await post(app, "/admin/backups", { client_name: "files" })).json();
    assert.equal(backup.message, "Backup job queued");
    assert.equal(typeof backup.data.job_id, "number");
    const prune = await post(app, "/admin/backups/prune", {});
    assert.equal(prune.status, 202);
    const body = await prune.json();
    assert.equal(body.message, "Prune job queued");
    assert.equal(typeof body.data.job_id, "number");
    assert.equal(body.data.job_id, body.data.id);
  });
});

Deno.test("api: a backup or schedule with no client_name and no header names client_name", async () => {
  await withApp(async (app) => {
    for (const path of ["/admin/backups", "/admin/backups/schedules"]) {
      const body = path.endsWith("schedules") ? { cron: "0 2 * * *" } : undefined;
      const res = await post(app, path, body);
      assert.equal(res.status, 400, path);
      const json = await res.json();
      assert.equal(json.code, "VALIDATION_FAILED");
      assert.equal(json.details[0].path, "client_name");
      assert.match(json.message, /client_name: required/);
      assert.ok(!json.message.includes('Unknown client ""'));
    }
  });
});

Deno.test("api: a job or schedule id that is not a positive integer is named as such", async () => {
  await withApp(async (app) => {
    for (
      const path of [
        "/admin/backups/jobs/abc",
        "/admin/backups/jobs/1.5",
        "/admin/backups/jobs/0",
        "/admin/backups/jobs/-3",
      ]
    ) {
      const res = await app.request(path);
      assert.equal(res.status, 400, path);
      const json = await res.json();
      assert.equal(json.message, "Request is invalid: path: must be a positive integer", path);
      assert.ok(!json.message.includes("NaN"));
    }
    assert.equal((await app.request("/admin/backups/jobs/7")).status, 404);
  });
});

Deno.test("api: a known path with the wrong method is 405 with Allow; an unknown path stays 404", async () => {
  await withApp(async (app) => {
    const cases: [string, string, string][] = [
      ["DELETE", "/admin/backups/jobs", "GET, HEAD"],
      ["PUT", "/admin/backups/schedules/3", "DELETE, PATCH"],
      ["GET", "/admin/backups/jobs/3/cancel", "POST"],
      ["POST", "/admin/health", "GET, HEAD"],
    ];
    for (const [method, path, allow] of cases) {
      const res = await app.request(path, { method });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
      assert.equal((await res.json()).code, "METHOD_NOT_ALLOWED");
    }
    assert.equal((await app.request("/admin/nothing-here")).status, 404);
  });
});

Deno.test("api: counts in messages use the right plural", async () => {
  await withApp(async (app) => {
    const res = await post(app, "/admin/backups/dlq/requeue", {});
    assert.equal((await res.json()).message, "Requeued 0 jobs");
  });
  assert.equal(plural(1, "job"), "1 job");
  assert.equal(plural(2, "job"), "2 jobs");
  assert.equal(plural(1, "failed job"), "1 failed job");
  assert.equal(plural(0, "copy", "copies"), "0 copies");
});

Deno.test("allowedMethods matches Hono patterns, including regex parameters that span slashes", () => {
  const routes = [
    { method: "ALL", path: "/*" },
    { method: "GET", path: "/admin/backups/jobs/:id" },
    { method: "POST", path: "/admin/backups/:key{.+}/restore" },
    { method: "GET", path: "/admin/backups/" },
  ];
  assert.deepEqual(allowedMethods(routes, "/admin/backups/jobs/12"), ["GET", "HEAD"]);
  assert.deepEqual(allowedMethods(routes, "/admin/backups/backups/a/b.dump/restore"), ["POST"]);
  assert.deepEqual(allowedMethods(routes, "/admin/backups"), ["GET", "HEAD"]);
  assert.deepEqual(allowedMethods(routes, "/admin/other"), []);
  assert.ok(patternRegExp("/a/:id").test("/a/x"));
  assert.ok(!patternRegExp("/a/:id").test("/a/x/y"));
  assert.ok(!patternRegExp("/a.b").test("/aXb"));
});

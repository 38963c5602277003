import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { isUiPath } from "../../src/ui/routes.tsx";
import { testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

/** Hono's `/:key{.+}` and `/:id` as OpenAPI's `{key}` and `{id}`. */
function openApiPath(path: string): string {
  return path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}");
}

Deno.test("openapi: every route the app serves is in /admin/openapi.json, and nothing else", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {});
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const res = await app.request("/admin/openapi.json");
      assert.equal(res.status, 200);
      const doc = await res.json();
      assert.equal(doc.openapi, "3.1.0");
      const served = app.routes
        // The dashboard (/ and /ui/*) serves pages, not API operations.
        .filter((r) => r.method !== "ALL" && !isUiPath(r.path))
        .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`)
        .sort();
      const documented = Object.entries(doc.paths as Record<string, object>)
        .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
        .sort();
      assert.deepEqual(documented, served);
      assert.ok(served.length >= 24);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("openapi: bodies come from the validating schemas (a documented field is accepted)", async () => {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, {});
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const doc = await (await app.request("/admin/openapi.json")).json();
      const restore = doc.paths["/admin/backups/{key}/restore"].post;
      const body = restore.requestBody.content["application/json"].schema;
      for (const field of ["client_name", "target", "replace", "flush"]) {
        assert.ok(field in body.properties, field);
      }
      assert.equal(body.additionalProperties, false, "unknown fields are refused");
      const schedule = doc.paths["/admin/backups/schedules"].post.requestBody.content[
        "application/json"
      ].schema;
      assert.ok(schedule.properties.retention);
      const jobs = doc.paths["/admin/backups/jobs"].get.parameters.map((p: { name: string }) =>
        p.name
      );
      assert.deepEqual(jobs, ["status", "client_name", "kind", "limit", "cursor"]);
      assert.deepEqual(doc.paths["/admin/health"].get.security, []);
    } finally {
      await services.store.close();
    }
  });
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { json, spawnDaemon, waitForJob } from "../helpers/daemon.ts";
import { makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test({
  name: "daemon: every line it prints, on stdout and stderr, is one JSON object",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await makeTree(src);
      const config = await writeConfig(dir, {
        clients: { files: { kind: "directory", path: src } },
      });
      const d = await spawnDaemon(config);
      try {
        // A body without content-length (chunked) makes hono's body limit read
        // request.signal, and Deno.serve then printed a plain-text warning.
        const queued = await json(
          await d.api("/admin/backups", { method: "POST", json: { client_name: "files" } }),
        );
        const job = await waitForJob(d, queued.data.job_id, ["completed"]);
        const key = encodeURIComponent(job.result.key);
        await (await d.api(`/admin/backups/${key}/download`)).arrayBuffer();
        const chunked = new Blob(["{}"]).stream();
        await json(await d.api(`/admin/backups/${key}/verify`, { method: "POST", body: chunked }));
        await (await d.api("/admin/backups", { method: "POST", body: "{bad" })).text();
        await (await d.api("/admin/backups/jobs")).text();
      } finally {
        assert.equal(await d.stop(), 0);
      }
      const plain = d.logs.filter((line) => {
        try {
          return typeof JSON.parse(line) !== "object";
        } catch {
          return true;
        }
      });
      assert.deepEqual(plain, []);
      assert.ok(d.logs.length > 5);
    });
  },
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { percentOf, shownProgress } from "../../src/jobs/progress.ts";
import { cairn, makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test("percent: one decimal, at most 100, null without a total", () => {
  assert.equal(percentOf({ bytes_done: 0, bytes_total: 200 }), 0);
  assert.equal(percentOf({ bytes_done: 1, bytes_total: 3 }), 33.3);
  assert.equal(percentOf({ bytes_done: 2, bytes_total: 3 }), 66.6);
  assert.equal(percentOf({ bytes_done: 250, bytes_total: 200 }), 100);
  assert.equal(percentOf({ bytes_done: 5, bytes_total: null }), null);
  assert.equal(percentOf({ bytes_done: 5, bytes_total: 0 }), null);
});

Deno.test("a completed job shows its work done; a stopped one where it stopped", () => {
  const p = { bytes_done: 700, bytes_total: 1000, phase: "storing" };
  assert.deepEqual(shownProgress(p, "completed"), {
    bytes_done: 1000,
    bytes_total: 1000,
    phase: "storing",
    percent: 100,
  });
  assert.deepEqual(shownProgress({ bytes_done: 42, bytes_total: null }, "completed"), {
    bytes_done: 42,
    bytes_total: 42,
    percent: 100,
  });
  assert.deepEqual(shownProgress(p, "cancelled"), { ...p, percent: 70 });
  assert.deepEqual(shownProgress(p, "running"), { ...p, percent: 70 });
  assert.equal(shownProgress(null, "pending"), null);
});

Deno.test("job records: a finished backup's progress is whole; a failed backup names no key", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const config = await writeConfig(dir, {
      clients: {
        files: { kind: "directory", path: src },
        gone: { kind: "directory", path: join(dir, "nowhere") },
      },
    });
    const ok = JSON.parse((await cairn(["backup", "files", "--json", "--config", config])).stdout);
    assert.equal(ok.status, "completed");
    assert.equal(ok.progress.percent, 100);
    assert.equal(ok.progress.bytes_done, ok.progress.bytes_total);
    const restore = JSON.parse(
      (await cairn(["restore", ok.key, "--target", join(dir, "r"), "--json", "--config", config]))
        .stdout,
    );
    assert.equal(restore.progress.bytes_total, ok.result.size_bytes);
    assert.equal(restore.progress.percent, 100);
    const failed = await cairn(["backup", "gone", "--json", "--config", config]);
    assert.equal(failed.code, 1);
    const record = JSON.parse(failed.stdout);
    assert.equal(record.status, "failed");
    assert.equal(record.key, null, "no artifact exists under the key it had reserved");
  });
});

Deno.test({
  name:
    "a running directory backup carries bytes_total (the tree's apparent size), in the unit of bytes_done",
  sanitizeResources: false,
  async fn() {
    const { runHere } = await import("../../src/runtime/run_here.ts");
    const { testServices } = await import("../helpers/services.ts");
    const { randomBytes } = await import("../helpers/tmp.ts");
    await withTempDir(async (dir) => {
      const src = join(dir, "src");
      await Deno.mkdir(src);
      for (let i = 0; i < 8; i++) await Deno.writeFile(join(src, `f${i}`), randomBytes(4 << 20));
      const services = await testServices(dir, { files: { kind: "directory", path: src } });
      try {
        const seen: { done: number; total: number | null }[] = [];
        const job = await runHere(services, {
          kind: "backup",
          client_name: "files",
          max_attempts: 1,
        }, {
          onProgress: (_job, p) => seen.push({ done: p.bytes_done, total: p.bytes_total }),
        });
        assert.equal(job.status, "completed", job.error ?? "");
        const totals = seen.map((s) => s.total).filter((t) => t !== null);
        assert.ok(totals.length > 0, "a total was reported while running");
        // The files' bytes plus the directory's own size, as du counts it.
        const total = totals[totals.length - 1]!;
        assert.ok(total >= 8 * (4 << 20) && total <= 8 * (4 << 20) + 64 * 1024, String(total));
        // Plain bytes against the plain size: never past it by more than tar's headers.
        for (const s of seen) assert.ok(s.done <= 8 * (4 << 20) + 64 * 1024, String(s.done));
      } finally {
        await services.store.close();
      }
    });
  },
});

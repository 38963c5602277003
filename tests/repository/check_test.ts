import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { manifestKey } from "../../src/repository/keys.ts";
import { runAttempt } from "../../src/runtime/attempt.ts";
import { runHere } from "../../src/runtime/run_here.ts";
import { testServices } from "../helpers/services.ts";
import { cairn, makeTree, withTempDir } from "../helpers/tmp.ts";

Deno.test("check: clean, then every kind of damage listed with exit 1; --read-data finds flipped bytes", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const services = await testServices(dir, { files: { kind: "directory", path: src } });
    const configPath = join(dir, "cairn.yaml");
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({
        store: { kind: "sqlite", path: join(dir, "cairn.db") },
        repository: { kind: "fs", path: join(dir, "repo") },
        clients: { files: { kind: "directory", path: src } },
      }),
    );
    try {
      const keys: string[] = [];
      for (let i = 0; i < 5; i++) {
        const job = await runHere(services, {
          kind: "backup",
          client_name: "files",
          max_attempts: 1,
        });
        keys.push(job.key!);
      }
      const clean = await cairn(["check", "--read-data", "--config", configPath]);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      assert.match(
        clean.stdout,
        /^No problems in .*: 5 manifest\(s\), 5 artifact\(s\), .* read and hashed, /m,
      );

      const path = (key: string) => join(services.repository.location, key);
      // 0: one byte flipped in place (same size: only --read-data sees it).
      const bytes = await Deno.readFile(path(keys[0]));
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await Deno.writeFile(path(keys[0]), bytes);
      // 1: grown; 2: artifact gone; 3: manifest gone; plus a leftover of a write.
      await Deno.writeFile(path(keys[1]), new Uint8Array([1, 2, 3]), { append: true });
      await Deno.remove(path(keys[2]));
      await Deno.remove(path(manifestKey(keys[3])));
      await Deno.mkdir(join(dir, "repo", ".tmp"), { recursive: true });
      await Deno.writeTextFile(join(dir, "repo", ".tmp", "w1-abc.part"), "x");

      const structural = await cairn(["check", "--json", "--config", configPath]);
      assert.equal(structural.code, 1, structural.stderr);
      const report = JSON.parse(structural.stdout);
      assert.equal(report.clean, false);
      assert.deepEqual(
        report.problems.map((p: { kind: string; key: string }) => [p.kind, p.key]).sort(),
        [
          ["artifact_missing", keys[2]],
          ["artifact_without_manifest", keys[3]],
          ["size_mismatch", keys[1]],
          ["temp_leftover", ".tmp/w1-abc.part"],
        ].sort(),
      );
      const sizeProblem = report.problems.find((p: { kind: string }) => p.kind === "size_mismatch");
      assert.equal(
        sizeProblem.message,
        `${keys[1]} holds ${(await Deno.stat(path(keys[1]))).size} bytes; its manifest records ${
          (await Deno.stat(path(keys[1]))).size - 3
        }`,
      );
      const deep = await cairn(["check", "--read-data", "--json", "--config", configPath]);
      assert.equal(deep.code, 1);
      const deepReport = JSON.parse(deep.stdout);
      assert.deepEqual(
        deepReport.problems.filter((p: { kind: string }) => p.kind === "checksum_mismatch")
          .map((p: { key: string }) => p.key),
        [keys[0]],
      );
      assert.equal(deepReport.problems.length, 5);
      const text = await cairn(["check", "--config", configPath]);
      assert.match(
        text.stdout,
        /^artifact_missing: the manifest of .* exists but its artifact does not$/m,
      );
      assert.match(text.stdout, /^4 problem\(s\) in /m);

      assert.equal((await cairn(["check", "extra", "--config", configPath])).code, 2);
      assert.equal((await cairn(["check", "--bogus", "--config", configPath])).code, 2);

      // The same check as a job through the API.
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const res = await app.request("/admin/repository/check", {
        method: "POST",
        body: JSON.stringify({ read_data: true }),
        headers: { "content-type": "application/json" },
      });
      assert.equal(res.status, 202);
      const { job_id } = (await res.json()).data;
      const claimed =
        (await services.store.claim({ owner: "t", leaseMs: 60_000 }, { id: job_id }))!;
      const done = await runAttempt(services, claimed, { controller: new AbortController() });
      // Problems fail the job; its result is still the whole report.
      assert.equal(done.status, "failed");
      assert.equal(done.kind, "check");
      assert.match(
        done.error!,
        /^The repository check of .* found 5 problems \(1 artifact_missing, 1 artifact_without_manifest, 1 checksum_mismatch, 1 size_mismatch, 1 temp_leftover\): /,
      );
      assert.equal((done.result as { problems: unknown[] }).problems.length, 5);
      assert.equal(done.result!.error_code, "CHECK_FOUND_PROBLEMS");
      const bad = await app.request("/admin/repository/check", {
        method: "POST",
        body: JSON.stringify({ read_data: "yes" }),
        headers: { "content-type": "application/json" },
      });
      assert.equal(bad.status, 400);
    } finally {
      await services.store.close();
    }
  });
});

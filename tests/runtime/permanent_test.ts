import assert from "node:assert/strict";
import { join } from "node:path";
import { SKIP_FAULTS, withoutDacOverride } from "../helpers/mounts.ts";
import {
  cairn,
  CAIRN_PERMISSIONS,
  MAIN,
  makeTree,
  withTempDir,
  writeConfig,
} from "../helpers/tmp.ts";

/**
 * Failures that another attempt cannot fix go to the dead-letter queue at the first
 * attempt, however many attempts the job has: a retry with backoff only delays the
 * operator's fix.
 */
async function failedJob(config: string, client: string, asRootWithoutDac = false) {
  const cmd = asRootWithoutDac ? withoutDacOverride([Deno.execPath()]) : [Deno.execPath()];
  const out = await new Deno.Command(cmd[0], {
    args: [
      ...cmd.slice(1),
      "run",
      ...CAIRN_PERMISSIONS,
      MAIN,
      "backup",
      client,
      "--json",
      "--config",
      config,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1, new TextDecoder().decode(out.stderr));
  const jobs = JSON.parse((await cairn(["jobs", "--json", "--config", config])).stdout);
  const list = Array.isArray(jobs) ? jobs : jobs.jobs;
  assert.equal(list.length, 1);
  return list[0];
}

Deno.test("permanent: a missing directory fails at the first of 3 attempts", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, {
      clients: { gone: { kind: "directory", path: join(dir, "nowhere") } },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    const job = await failedJob(config, "gone");
    assert.equal(job.status, "failed");
    assert.equal(job.attempts, 1);
    assert.match(job.error, /nowhere of client gone: it does not exist/);
  });
});

Deno.test("permanent: a file that cannot be read fails at the first of 3 attempts", {
  ignore: SKIP_FAULTS,
}, async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    await Deno.writeTextFile(join(src, "secret.key"), "k");
    await Deno.chmod(join(src, "secret.key"), 0o000);
    const config = await writeConfig(dir, {
      clients: { files: { kind: "directory", path: src } },
      backup: { worker_max_attempts: 3, retry_backoff_ms: 60_000 },
    });
    await Deno.chmod(dir, 0o755);
    const job = await failedJob(config, "files", true);
    assert.equal(job.status, "failed");
    assert.equal(job.attempts, 1);
    assert.match(job.error, /secret\.key: Cannot open: Permission denied/);
  });
});

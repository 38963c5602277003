import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { runHere } from "../../src/runtime/run_here.ts";
import { openServices } from "../../src/runtime/services.ts";
import { cairn, makeTree, withTempDir, writeConfig } from "../helpers/tmp.ts";

Deno.test("cli: prune --dry-run shows the plan and deletes nothing; prune applies it to that schedule's backups only", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await makeTree(src);
    const configPath = await writeConfig(dir, {
      clients: { files: { kind: "directory", path: src } },
    });
    configureLog({ to: () => {} });
    const services = await openServices(parseConfig(await Deno.readTextFile(configPath)));
    const schedule = await services.store.createSchedule({
      client_name: "files",
      cron: "0 * * * *",
      timezone: "UTC",
      label: "hourly",
      enabled: true,
      retention: { keep_last: 2 },
      next_run_at: null,
    });
    for (let i = 0; i < 4; i++) {
      const job = await runHere(services, {
        kind: "backup",
        client_name: "files",
        label: "hourly",
        schedule_id: schedule.id,
        max_attempts: 1,
      });
      assert.equal(job.status, "completed");
    }
    await runHere(services, {
      kind: "backup",
      client_name: "files",
      label: "manual",
      max_attempts: 1,
    });
    await services.store.close();

    const dry = await cairn(["prune", "--dry-run", "--json", "--config", configPath]);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout).result;
    assert.equal(plan.dry_run, true);
    assert.equal(plan.would_remove, 2);
    assert.equal(plan.schedules[0].keep.length, 2);
    assert.deepEqual(plan.schedules[0].keep.map((d: { reasons: string[] }) => d.reasons), [[
      "keep_last 2",
    ], ["keep_last 2"]]);
    assert.equal(
      JSON.parse((await cairn(["list", "--json", "--config", configPath])).stdout).backups.length,
      5,
      "dry run deleted nothing",
    );

    const human = await cairn(["prune", "--dry-run", "--config", configPath]);
    assert.match(human.stdout, /Prune plan \(dry run, nothing deleted\)/);
    assert.match(human.stdout, /keep .*\(keep_last 2\)/);

    const real = await cairn(["prune", "--client", "files", "--json", "--config", configPath]);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(JSON.parse(real.stdout).result.removed, 2);
    const left =
      JSON.parse((await cairn(["list", "--json", "--config", configPath])).stdout).backups;
    assert.equal(left.length, 3);
    assert.equal(
      left.filter((b: { label: string }) => b.label === "manual").length,
      1,
      "manual backups are never pruned",
    );
  });
});

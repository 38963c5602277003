import assert from "node:assert/strict";
import { join } from "node:path";
import { CairnError } from "../../src/errors.ts";
import { configureLog } from "../../src/log.ts";
import { JsonlStore } from "../../src/store/jsonl.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import * as state from "../../src/jobs/state.ts";
import { tempDir, withTempDir } from "../helpers/tmp.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("sqlite", (dir, options) => SqliteStore.open(join(dir, "cairn.db"), options));
storeConformance("jsonl", (dir, options) => JsonlStore.open(join(dir, "jobs.jsonl"), options));

const job = { kind: "backup" as const, client_name: "c", max_attempts: 3 };

Deno.test("jsonl store: a torn last line is dropped with a warning, and appends continue cleanly", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "jobs.jsonl");
    const store = await JsonlStore.open(path);
    await store.enqueue(job);
    await store.enqueue(job);
    await store.close();
    await Deno.writeTextFile(path, '{"t":"job","v":{"id":3,"kind":"back', { append: true });
    const warnings: string[] = [];
    configureLog({ to: (line) => warnings.push(line) });
    try {
      const again = await JsonlStore.open(path);
      assert.equal(await again.count({}), 2);
      const c = await again.enqueue(job);
      assert.equal(c.id, 3);
      await again.close();
      const reread = await JsonlStore.open(path);
      assert.equal(await reread.count({}), 3);
      await reread.close();
    } finally {
      configureLog({ to: "stdout" });
    }
    assert.ok(warnings.some((w) => w.includes("torn last line")), warnings.join("\n"));
  });
});

Deno.test("jsonl store: a transaction cut anywhere by a kill is lost whole, never applied in part (a store copy's import)", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "jobs.jsonl");
    const store = await JsonlStore.open(path);
    await store.enqueue(job);
    await store.close();
    const before = (await Deno.readFile(path)).length;
    const target = await JsonlStore.open(path);
    const now = Date.now();
    await target.importRecords({
      jobs: Array.from({ length: 300 }, (_, i) => state.newJob(i + 2, job, now + i)),
      schedules: [],
    });
    await target.close();
    const whole = await Deno.readFile(path);
    assert.equal(
      await JsonlStore.open(path).then(async (s) => {
        const n = await s.count({});
        await s.close();
        return n;
      }),
      301,
    );
    // A kill (or a power loss) may cut the write at any byte: what is read back holds
    // either none of the import or all of it.
    for (
      const cut of [
        before + 1,
        before + 1000,
        Math.floor((before + whole.length) / 2),
        whole.length - 1,
      ]
    ) {
      await Deno.writeFile(path, whole.subarray(0, cut));
      configureLog({ to: () => {} });
      try {
        const again = await JsonlStore.open(path);
        assert.equal(await again.count({}), 1, `cut at byte ${cut} of ${whole.length}`);
        await again.close();
      } finally {
        configureLog({ to: "stdout" });
      }
    }
  });
});

Deno.test("jsonl store: corruption in the middle is refused with a clear error, not guessed at", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "jobs.jsonl");
    await Deno.writeTextFile(
      path,
      '{"t":"meta","format":1,"next_job_id":1,"next_schedule_id":1}\nGARBAGE\n{"t":"meta","format":1,"next_job_id":1,"next_schedule_id":1}\n',
    );
    await assert.rejects(
      JsonlStore.open(path),
      (e) => e instanceof CairnError && e.code === "STORE_CORRUPT" && /line 2/.test(e.message),
    );
  });
});

Deno.test("jsonl store: a second opener fails at once, naming the holder", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "jobs.jsonl");
    const first = await JsonlStore.open(path);
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { JsonlStore } from "${new URL("../../src/store/jsonl.ts", import.meta.url).href}";
        try { await JsonlStore.open(${
          JSON.stringify(path)
        }); console.log("OPENED"); } catch (e) { console.log(e.code + ": " + e.message); }`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(child.stdout);
    assert.match(
      text,
      /STORE_LOCKED: The JSONL job store .* is in use by another process \(pid \d+\)/,
    );
    await first.close();
    const second = await JsonlStore.open(path);
    await second.close();
  });
});

Deno.test("jsonl store: compaction keeps every live record and shrinks the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "jobs.jsonl");
    const store = await JsonlStore.open(path);
    for (let i = 0; i < 600; i++) {
      await store.enqueue(job);
      const j = (await store.claim({ owner: "w", leaseMs: 1000 }))!;
      await store.complete(j.id, j.lease_token!, { i });
    }
    await store.close();
    const lines = (await Deno.readTextFile(path)).trim().split("\n").length;
    assert.ok(lines < 1800, `compacted (${lines} lines for 600 jobs x 3 writes)`);
    const again = await JsonlStore.open(path);
    assert.equal(await again.count({ status: "completed" }), 600);
    assert.deepEqual((await again.get(600))?.result, { i: 599 });
    await again.close();
  });
});

/** Kills a writer process mid-stream, many times, and checks the store always reopens. */
async function killWhileWriting(kind: "sqlite" | "jsonl"): Promise<void> {
  const dir = await tempDir();
  const path = join(dir, kind === "sqlite" ? "cairn.db" : "jobs.jsonl");
  const mod = new URL(`../../src/store/${kind}.ts`, import.meta.url).href;
  const cls = kind === "sqlite" ? "SqliteStore" : "JsonlStore";
  try {
    for (let round = 0; round < 4; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `import { ${cls} } from "${mod}";
          const s = await ${cls}.open(${JSON.stringify(path)});
          console.log("ready");
          for (;;) { await s.enqueue({ kind: "backup", client_name: "c", max_attempts: 3, params: { target: "x".repeat(5000) } });
            const j = await s.claim({ owner: "w", leaseMs: 1000 }); if (j) await s.complete(j.id, j.lease_token, { pad: "y".repeat(3000) }); }`,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.getReader();
      await reader.read();
      await new Promise((r) => setTimeout(r, 150 + round * 70));
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
      configureLog({ to: () => {} });
      const store = kind === "sqlite" ? await SqliteStore.open(path) : await JsonlStore.open(path);
      configureLog({ to: "stdout" });
      const n = await store.count({});
      assert.ok(n > 0, "jobs written before the kill are there");
      const j = await store.enqueue(job);
      assert.ok(j.id > 0);
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sqlite store: kill -9 while writing never leaves it unreadable", () =>
  killWhileWriting("sqlite"));
Deno.test("jsonl store: kill -9 while writing never leaves it unreadable", () =>
  killWhileWriting("jsonl"));

Deno.test("sqlite store: two processes claiming at once never share a job", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "cairn.db");
    const store = await SqliteStore.open(path);
    for (let i = 0; i < 200; i++) await store.enqueue(job);
    const mod = new URL("../../src/store/sqlite.ts", import.meta.url).href;
    const claimer = () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `import { SqliteStore } from "${mod}";
          const s = await SqliteStore.open(${JSON.stringify(path)}); const ids = [];
          for (;;) { const j = await s.claim({ owner: String(Deno.pid), leaseMs: 60000 }); if (!j) break; ids.push(j.id); }
          console.log(JSON.stringify(ids));`,
        ],
        stdout: "piped",
      }).output();
    const outs = await Promise.all([claimer(), claimer(), claimer()]);
    const ids = outs.flatMap((o) => JSON.parse(new TextDecoder().decode(o.stdout)) as number[]);
    assert.equal(ids.length, 200);
    assert.equal(new Set(ids).size, 200);
    await store.close();
  });
});

Deno.test("stores written before schedule kinds read old schedules as auto-pruned backup schedules", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  const { MIGRATIONS } = await import("../../src/store/sqlite_schema.ts");
  const { SqliteStore } = await import("../../src/store/sqlite.ts");
  const { JsonlStore } = await import("../../src/store/jsonl.ts");
  const dir = await Deno.makeTempDir({ prefix: "cairn-old-store-" });
  try {
    // SQLite at schema 3 (before the schedule columns), with one schedule.
    const db = new DatabaseSync(`${dir}/old.db`);
    for (let i = 0; i < 3; i++) db.exec(MIGRATIONS[i]);
    db.exec("PRAGMA user_version = 3");
    db.exec(
      "INSERT INTO schedules (client_name, cron, timezone, label, enabled, retention, created_at, updated_at) VALUES ('c', '0 3 * * *', 'UTC', 'nightly', 1, '{}', 1, 1)",
    );
    db.close();
    const sqlite = await SqliteStore.open(`${dir}/old.db`);
    const [s] = await sqlite.listSchedules();
    assert.deepEqual([s.kind, s.config_owned, s.auto_prune, s.label], [
      "backup",
      false,
      true,
      "nightly",
    ]);
    await sqlite.close();
    // A JSONL line written by an older cairn.
    await Deno.writeTextFile(
      `${dir}/old.jsonl`,
      JSON.stringify({
        t: "sched",
        v: {
          id: 1,
          client_name: "c",
          cron: "0 3 * * *",
          timezone: "UTC",
          label: "nightly",
          enabled: true,
          retention: {},
          next_run_at: null,
          last_run_at: null,
          last_job_id: null,
          created_at: 1,
          updated_at: 1,
        },
      }) + "\n",
    );
    const jsonl = await JsonlStore.open(`${dir}/old.jsonl`);
    const [j] = await jsonl.listSchedules();
    assert.deepEqual([j.kind, j.config_owned, j.auto_prune], ["backup", false, true]);
    await jsonl.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

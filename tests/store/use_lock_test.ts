import assert from "node:assert/strict";
import { join } from "node:path";
import { initProcessId, parseStatStart } from "../../src/io/process_id.ts";
import {
  describeUser,
  fileStoreUsers,
  lockedError,
  parseUseRecord,
} from "../../src/store/use_lock.ts";
import { withTempDir } from "../helpers/tmp.ts";

const at = Date.parse("2026-11-30T12:00:00.123Z");

Deno.test("use lock: a holder's record is JSON with a nonce, a role and a process; anything else is none", () => {
  const r = {
    role: "cli",
    command: "backup",
    pid: 7,
    host: "h",
    since: at,
    proc: { host: "h/b/1", pid: 7, start: "99" },
    nonce: "n",
  };
  assert.deepEqual(parseUseRecord(JSON.stringify(r)), r);
  assert.equal(parseUseRecord(JSON.stringify(r).slice(0, 40)), null);
  assert.equal(parseUseRecord(""), null);
  assert.equal(parseUseRecord(JSON.stringify({ ...r, proc: undefined })), null);
});

Deno.test("use lock: a file store's holders are the records of live processes; a killed holder's record is removed", async () => {
  await withTempDir(async (dir) => {
    const store = { kind: "sqlite" as const, path: join(dir, "cairn.db") };
    const here = await initProcessId();
    const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const start = parseStatStart(await Deno.readTextFile(`/proc/${sleeper.pid}/stat`))!;
    sleeper.kill("SIGKILL");
    await sleeper.status;
    const users = join(dir, "cairn.db.users");
    await Deno.mkdir(users);
    const record = (pid: number, proc: unknown, since: number) =>
      JSON.stringify({
        role: "cli",
        command: "backup",
        pid,
        host: "h",
        since,
        proc,
        nonce: `${pid}`,
      });
    await Deno.writeTextFile(
      join(users, "dead.json"),
      record(sleeper.pid, { ...here, pid: sleeper.pid, start }, at),
    );
    await Deno.writeTextFile(join(users, "live.json"), record(Deno.pid, here, at + 1));
    await Deno.writeTextFile(join(users, "torn.json"), '{"role":"cli","no');
    assert.deepEqual(await fileStoreUsers(store), [
      { role: "cli", command: "backup", pid: Deno.pid, host: "h", since: at + 1 },
    ]);
    const left = (await Array.fromAsync(Deno.readDir(users))).map((e) => e.name).sort();
    assert.deepEqual(left, ["live.json", "torn.json"]);
    assert.deepEqual(await fileStoreUsers({ kind: "jsonl", path: join(dir, "none.jsonl") }), []);
  });
});

Deno.test("use lock: holders are named with their role, node, pid, host and since when", () => {
  const base = { pid: 41, host: "web-1", since: at };
  assert.equal(
    describeUser({ ...base, role: "daemon", command: "daemon", node: "n1" }),
    "a cairn daemon (node n1, pid 41 on host web-1, since 2026-11-30T12:00:00Z)",
  );
  assert.equal(
    describeUser({ ...base, role: "cli", command: "restore" }),
    "a one-off `cairn restore` (pid 41 on host web-1, since 2026-11-30T12:00:00Z)",
  );
  assert.equal(
    describeUser({ ...base, role: "copy", command: "store copy" }),
    "`cairn store copy` (pid 41 on host web-1, since 2026-11-30T12:00:00Z)",
  );
});

Deno.test("use lock: the refusal says what to do, for a copy and for what a copy holds off", () => {
  const copy = { role: "copy" as const, command: "store copy", pid: 5, host: "h", since: at };
  const daemon = { role: "daemon" as const, command: "daemon", pid: 6, host: "h", since: at };
  const e = lockedError("sqlite:x.db", "daemon", [copy]);
  assert.equal(e.code, "STORE_LOCKED");
  assert.equal(
    e.message,
    "The job store sqlite:x.db is locked: store copy in progress (`cairn store copy` (pid 5 on host h, since 2026-11-30T12:00:00Z)); start the daemon when the copy has finished",
  );
  assert.match(
    lockedError("s", "cli", []).message,
    /store copy in progress \(another process\); run the command again/,
  );
  assert.equal(
    lockedError("s", "copy", [daemon]).message,
    "The job store s is in use by a cairn daemon (pid 6 on host h, since 2026-11-30T12:00:00Z): stop the daemon or let the job finish before copying the store",
  );
  assert.match(
    lockedError("s", "copy", []).message,
    /in use by a process that has not said who it is yet/,
  );
});

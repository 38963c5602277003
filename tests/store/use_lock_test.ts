import assert from "node:assert/strict";
import { describeUser, lockedError, parseUseRecords } from "../../src/store/use_lock.ts";

const at = Date.parse("2026-11-30T12:00:00.123Z");
const proc = { host: "h/b/1", pid: 7, start: "99" };

Deno.test("use lock: the lock file's holders are the records not marked released; torn lines are skipped", () => {
  const a = { role: "daemon", command: "daemon", pid: 7, host: "h", since: at, proc, nonce: "a" };
  const b = { ...a, role: "cli", command: "backup", nonce: "b" };
  const c = { ...a, role: "cli", command: "prune", nonce: "c" };
  const text = [a, b, { released: "a" }, c].map((r) => JSON.stringify(r)).join("\n") +
    '\n{"role":"cli","nonce":"tor';
  assert.deepEqual(parseUseRecords(text).map((r) => r.nonce), ["b", "c"]);
  assert.deepEqual(parseUseRecords(""), []);
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

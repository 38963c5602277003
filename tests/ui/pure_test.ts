import assert from "node:assert/strict";
import { cronPreview, formatInZone } from "../../src/ui/cron_preview.ts";
import { csrfProblem } from "../../src/ui/csrf.ts";
import { formatBytes, formatDuration } from "../../src/ui/format.ts";
import { SignInLimiter } from "../../src/ui/rate_limit.ts";
import { parseTables, replacedDescription, restoreOptions } from "../../src/ui/restore_form.ts";
import { SessionStore } from "../../src/ui/session.ts";
import { progressText } from "../../src/ui/pages/jobs.tsx";
import { decryptability, shortRecipient } from "../../src/ui/encryption.ts";
import type { JobRecord } from "../../src/jobs/types.ts";

const H = 3_600_000;

Deno.test("ui cron preview: the next 5 runs in the schedule's zone, across a DST change", () => {
  const after = new Date("2026-10-23T12:00:00Z");
  const p = cronPreview("30 2 * * *", "Europe/Berlin", after);
  assert.ok(p.ok);
  assert.deepEqual(p.runs.map((r) => r.toISOString()), [
    "2026-10-24T00:30:00.000Z",
    "2026-10-25T00:30:00.000Z", // CEST ends at 03:00 on 25 October: 02:30 comes twice, the first runs
    "2026-10-26T01:30:00.000Z",
    "2026-10-27T01:30:00.000Z",
    "2026-10-28T01:30:00.000Z",
  ]);
  assert.equal(formatInZone(p.runs[1], "Europe/Berlin"), "2026-10-25 02:30 (Europe/Berlin)");
  const bad = cronPreview("61 * * * *", "UTC", after);
  assert.ok(!bad.ok && /61|minute/i.test(bad.problem), JSON.stringify(bad));
  const zone = cronPreview("0 2 * * *", "Mars/Olympus", after);
  assert.ok(!zone.ok && zone.problem.includes("unknown time zone"));
  const fields = cronPreview("0 2 * *", "UTC", after);
  assert.ok(!fields.ok && fields.problem.includes("got 4"));
});

Deno.test("ui csrf: cross-site headers or a missing or wrong token refuse a POST", () => {
  const base = {
    method: "POST",
    ownOrigin: "http://127.0.0.1:4052",
    origin: "http://127.0.0.1:4052",
    secFetchSite: "same-origin",
    sentToken: "tok",
    sessionToken: "tok",
  };
  assert.equal(csrfProblem(base), null);
  assert.equal(csrfProblem({ ...base, method: "GET", sentToken: undefined }), null);
  assert.match(csrfProblem({ ...base, secFetchSite: "cross-site" })!, /Sec-Fetch-Site: cross-site/);
  assert.match(csrfProblem({ ...base, secFetchSite: "same-site" })!, /same-site/);
  assert.match(csrfProblem({ ...base, origin: "http://evil.example" })!, /Origin http:\/\/evil/);
  assert.match(csrfProblem({ ...base, sentToken: undefined })!, /CSRF token/);
  assert.match(csrfProblem({ ...base, sentToken: "other" })!, /CSRF token/);
  // Old browsers send neither header: the token alone decides.
  assert.equal(csrfProblem({ ...base, origin: undefined, secFetchSite: undefined }), null);
  // Sign-in has no session token yet: only the headers are checked.
  assert.equal(csrfProblem({ ...base, sentToken: undefined, sessionToken: undefined }), null);
});

Deno.test("ui sign-in limiter: 5 wrong keys lock an address for the rest of 15 minutes", () => {
  let t = 0;
  const limiter = new SignInLimiter(() => t);
  for (let i = 0; i < 4; i++) limiter.fail("a");
  assert.equal(limiter.retryAfterMs("a"), 0);
  limiter.fail("a");
  assert.equal(limiter.retryAfterMs("a"), 15 * 60_000);
  assert.equal(limiter.retryAfterMs("b"), 0, "per address");
  t = 15 * 60_000 - 1;
  assert.equal(limiter.retryAfterMs("a"), 1);
  t = 15 * 60_000;
  assert.equal(limiter.retryAfterMs("a"), 0);
  limiter.fail("b");
  limiter.succeed("b");
  assert.equal(limiter.retryAfterMs("b"), 0);
});

Deno.test("ui sessions: idle and absolute expiry; a deleted session is gone", () => {
  let t = 0;
  const store = new SessionStore(() => t, 10_000, 3_000);
  const s = store.create();
  assert.notEqual(s.id, s.csrf);
  assert.ok(s.id.length >= 40);
  t = 2_999;
  assert.equal(store.get(s.id)?.id, s.id, "use moves the idle deadline");
  t = 5_000;
  assert.ok(store.get(s.id));
  t = 8_001;
  assert.equal(store.get(s.id), null, "idle for 3 s");
  const s2 = store.create();
  for (t = 8_001; t < 18_001; t += 2_000) assert.ok(store.get(s2.id));
  t = 18_001;
  assert.equal(store.get(s2.id), null, "absolute end");
  const s3 = store.create();
  store.delete(s3.id);
  assert.equal(store.get(s3.id), null);
});

Deno.test("ui restore form: each kind's options and what a restore replaces, secrets masked", () => {
  assert.equal(restoreOptions("redis").overwriteFlag, "flush");
  assert.equal(restoreOptions("postgres").postgres, true);
  assert.equal(restoreOptions("directory").postgres, false);
  assert.equal(
    replacedDescription({ kind: "directory", path: "/srv/data", exclude: [] } as never, undefined),
    "the client's own directory /srv/data",
  );
  assert.equal(
    replacedDescription(
      { kind: "postgres", url: "postgres://u:pw@h:5432/app" } as never,
      "postgres://u:hunter2@db:5432/copy",
    ),
    "postgres://u:***@db:5432/copy",
  );
  assert.equal(
    replacedDescription(
      { kind: "postgres", url: "postgres://u:pw@h:5432/app" } as never,
      undefined,
    ),
    "the client's own database postgres://u:***@h:5432/app",
  );
  assert.deepEqual(parseTables("public.users\n orders , \n"), ["public.users", "orders"]);
});

Deno.test("ui format: bytes and durations", () => {
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatDuration(200_000), "3 min 20 s");
  assert.equal(formatDuration(3 * 86_400_000 + 4 * H), "3 d 4 h");
});

Deno.test("ui progress: percent, bytes, rate since start and elapsed, for a running job", () => {
  const job = {
    status: "running",
    started_at: "2026-11-30T10:00:00.000Z",
    finished_at: null,
    progress: { bytes_done: 50 * 1024 * 1024, bytes_total: 200 * 1024 * 1024, percent: 25 },
  } as unknown as JobRecord;
  assert.equal(
    progressText(job, Date.parse("2026-11-30T10:00:10.000Z")),
    "25 % · 50.0 MiB of 200.0 MiB · 5.0 MiB/s · 10 s",
  );
  const unknownTotal = {
    ...job,
    progress: { bytes_done: 2048, bytes_total: null, percent: null },
  } as unknown as JobRecord;
  assert.equal(
    progressText(unknownTotal, Date.parse("2026-11-30T10:00:02.000Z")),
    "2.0 KiB · 1.0 KiB/s · 2 s",
  );
  const pending = { ...job, started_at: null, progress: null } as unknown as JobRecord;
  assert.equal(progressText(pending, 0), "–");
});

Deno.test("ui chart: one polyline each for size and duration, scaled to the box; one run is a line", async () => {
  const { RunChart } = await import("../../src/ui/chart.tsx");
  const svg = String(
    await RunChart({
      runs: [{ size: 10, durationMs: 1000 }, { size: 20, durationMs: 500 }],
      label: "x",
    }).toString(),
  );
  assert.match(svg, /<polyline class="size"[^>]* points="0\.0,14\.0 120\.0,1\.0"/);
  assert.match(svg, /<polyline class="dur"[^>]* points="0\.0,1\.0 120\.0,14\.0"/);
  const one = String(await RunChart({ runs: [{ size: 5, durationMs: 5 }], label: "y" }).toString());
  assert.match(one, /points="0\.0,1\.0 120\.0,1\.0"/);
  assert.equal(
    String(await RunChart({ runs: [], label: "z" }).toString()),
    '<span class="muted">no runs</span>',
  );
});

Deno.test("ui encryption: not encrypted, decryptable (which recipient), write-only host, foreign recipients, unreadable identity file", () => {
  const A = "age1khva582mwgdsh8vxtwprh3hd5v0lvat9fz3prtgfz0ajanqgagxsc6z7ah";
  const B = "age1ggj8cw466t97as5ur03d670skd0ssg2w8hgyjs9l7uckajptfc4st70zsd";
  const C = "age1k3c4l3rtjv65zncm6pgpv8knsh7jddzjc2hcdx8rwltzavqn5a2skhrr2e";
  assert.equal(shortRecipient(A), "age1khva582m…c6z7ah");
  const zstd = { name: "zstd" as const, level: 3 };
  const sealed = [zstd, { name: "age" as const, recipients: [A, B] }];
  const file = "/etc/cairn/key.txt";
  const holds = (recipients: string[], identityFile: string | null = file) => ({
    identityFile,
    recipients,
    problem: null,
  });

  const plain = decryptability([zstd], holds([A]));
  assert.deepEqual(
    [plain.state, plain.encrypted, plain.canDecrypt, plain.note, plain.restoreBlocked],
    ["plain", false, null, "not encrypted", null],
  );
  // A format-1 manifest's legacy transforms (gzip) are not encrypted either.
  assert.equal(decryptability([{ name: "gzip", level: 6 }], holds([])).note, "not encrypted");

  // The second recipient's identity is enough; the answer names it.
  const mine = decryptability(sealed, holds([C, B]));
  assert.deepEqual(
    [mine.state, mine.canDecrypt, mine.matched, mine.note, mine.restoreBlocked],
    [
      "decryptable",
      true,
      B,
      "encrypted; this host can decrypt it (as age1ggj8cw46…t70zsd)",
      null,
    ],
  );

  const writeOnly = decryptability(sealed, holds([], null));
  assert.equal(writeOnly.state, "no-identity");
  assert.equal(writeOnly.canDecrypt, false);
  assert.equal(
    writeOnly.note,
    "encrypted; this host has no identity (write-only host): restore impossible here; " +
      "identities are looked for in repository.encryption.identity_file, which is not set on this host",
  );
  // An identity file that holds no key: the same, naming the file.
  assert.equal(
    decryptability(sealed, holds([])).restoreBlocked,
    "The backup is encrypted and this host holds no age identity: restore is impossible here. " +
      "Identities are looked for in the identity file /etc/cairn/key.txt.",
  );

  const foreign = decryptability(sealed, holds([C]));
  assert.deepEqual(
    [foreign.state, foreign.canDecrypt, foreign.matched, foreign.recipients],
    ["foreign", false, null, [A, B]],
  );
  assert.equal(
    foreign.note,
    "encrypted for age1khva582m…c6z7ah, age1ggj8cw46…t70zsd; this host holds none of them",
  );
  assert.equal(
    foreign.restoreBlocked,
    "The backup is encrypted for age1khva582m…c6z7ah, age1ggj8cw46…t70zsd, and the identity " +
      "file /etc/cairn/key.txt opens only age1k3c4l3rt…khrr2e: restore is impossible here.",
  );

  const unreadable = decryptability(sealed, {
    identityFile: file,
    recipients: [],
    problem: "it does not exist",
  });
  assert.deepEqual(
    [unreadable.state, unreadable.canDecrypt, unreadable.note],
    [
      "identity-unreadable",
      false,
      "encrypted; this host cannot read its identity file: it does not exist",
    ],
  );
});

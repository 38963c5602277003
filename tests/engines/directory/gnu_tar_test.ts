import assert from "node:assert/strict";
import {
  absolutize,
  classifyCreateStderr,
  createArgs,
  createOutcome,
  extractArgs,
  isRecentEnough,
  parseGnuTarVersion,
} from "../../../src/engines/directory/gnu_tar.ts";
import { CairnError } from "../../../src/errors.ts";

Deno.test("gnu tar: the version line is GNU tar's, at least 1.30", () => {
  const cases: Array<[string, string | null, boolean]> = [
    ["tar (GNU tar) 1.34\nCopyright (C) 2021 Free Software Foundation, Inc.\n", "1.34", true],
    ["tar (GNU tar) 1.30\n", "1.30", true],
    ["tar (GNU tar) 1.35.90\n", "1.35", true],
    ["tar (GNU tar) 2.0\n", "2.0", true],
    ["tar (GNU tar) 1.29\n", "1.29", false],
    ["tar (GNU tar) 1.3\n", "1.3", false],
    ["bsdtar 3.6.2 - libarchive 3.6.2 zlib/1.2.13 liblzma/5.4.1\n", null, false],
    ["BusyBox v1.36.1 (2023-06-10) multi-call binary.\n", null, false],
    ["", null, false],
    ["tar (GNU tar) 1.34 extra\n", null, false],
  ];
  for (const [output, text, ok] of cases) {
    const v = parseGnuTarVersion(output);
    assert.equal(v?.text ?? null, text, output);
    assert.equal(v !== null && isRecentEnough(v), ok, output);
  }
});

Deno.test("gnu tar: create arguments archive the root as '.', excludes before the operand", () => {
  assert.deepEqual(createArgs("/srv/up", { exclude: ["*.log", "./cache"], oneFileSystem: true }), [
    "--create",
    "--file=-",
    "--format=posix",
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=*",
    "--sparse",
    "--one-file-system",
    "--exclude=./.cairn-restore-*",
    "--exclude=./.cairn-old-*",
    "--exclude=./.cairn-incoming-*",
    "--exclude=./.cairn-done-*",
    "--exclude=*.log",
    "--exclude=./cache",
    "--directory=/srv/up",
    ".",
  ]);
  const plain = createArgs("/srv/up");
  assert.ok(!plain.includes("--one-file-system"));
  assert.deepEqual(plain.slice(-2), ["--directory=/srv/up", "."]);
});

Deno.test("gnu tar: extract arguments keep owners and modes, never absolute names", () => {
  const args = extractArgs("/t/.cairn-restore-1", { asRoot: true });
  for (
    const a of [
      "--extract",
      "--file=-",
      "--directory=/t/.cairn-restore-1",
      "--same-owner",
      "--same-permissions",
      "--numeric-owner",
      "--xattrs",
      "--xattrs-include=*",
    ]
  ) assert.ok(args.includes(a), a);
  for (const a of ["--absolute-names", "-P", "--keep-directory-symlink", "--overwrite"]) {
    assert.ok(!args.includes(a), a);
  }
  const user = extractArgs("/t/x", { asRoot: false });
  assert.ok(user.includes("--no-same-owner") && !user.includes("--same-owner"));
});

Deno.test("gnu tar: messages name members under the archived root", () => {
  assert.equal(
    absolutize("/usr/bin/tar: ./a b/c: socket ignored", "/srv"),
    "/srv/a b/c: socket ignored",
  );
  assert.equal(
    absolutize("tar: ./x: file changed as we read it", "/srv/"),
    "/srv/x: file changed as we read it",
  );
  assert.equal(
    absolutize("tar: .: Cannot open: Permission denied", "/srv"),
    "/srv: Cannot open: Permission denied",
  );
  assert.equal(
    absolutize("gtar: Exiting with failure status", "/srv"),
    "Exiting with failure status",
  );
});

Deno.test("gnu tar: stderr of a create splits into counted warnings and errors", () => {
  const stderr = [
    "/usr/bin/tar: ./run/app.sock: socket ignored",
    "/usr/bin/tar: ./run/b.sock: socket ignored",
    "/usr/bin/tar: ./log/app.log: file changed as we read it",
    "/usr/bin/tar: ./caf\\351.txt: Cannot open: Permission denied",
    "/usr/bin/tar: Exiting with failure status due to previous errors",
    "",
  ].join("\n");
  assert.deepEqual(classifyCreateStderr(stderr, "/srv"), {
    sockets_skipped: 2,
    changed_while_reading: 1,
    warnings: [
      "/srv/run/app.sock: socket ignored",
      "/srv/run/b.sock: socket ignored",
      "/srv/log/app.log: file changed as we read it",
    ],
    errors: ["/srv/caf\\351.txt: Cannot open: Permission denied"],
  });
});

Deno.test("gnu tar: exit 0 and 1 complete with warnings, 2 fails naming the files", () => {
  assert.equal(createOutcome(0, "", "/srv", "c").warnings.length, 0);
  const changed = createOutcome(1, "tar: ./a: file changed as we read it\n", "/srv", "c");
  assert.equal(changed.changed_while_reading, 1);
  assert.throws(
    () =>
      createOutcome(
        2,
        "tar: ./secret: Cannot open: Permission denied\ntar: Exiting with failure status due to previous errors\n",
        "/srv",
        "files",
      ),
    (e: unknown) =>
      e instanceof CairnError && e.code === "SOURCE_REFUSED" &&
      e.message ===
        "Cannot back up /srv of client files: /srv/secret: Cannot open: Permission denied",
  );
  assert.throws(() => createOutcome(2, "", "/srv", "c"), /tar exited with status 2/);
  // Exit 1 with an error line is not a mere warning; an I/O error may pass (retried).
  assert.throws(
    () => createOutcome(1, "tar: ./x: Read error at byte 0\n", "/srv", "c"),
    (e: unknown) =>
      e instanceof CairnError && e.code === "SOURCE_UNAVAILABLE" && /Read error/.test(e.message),
  );
  const many = Array.from({ length: 12 }, (_, i) => `tar: ./f${i}: Cannot open: Permission denied`)
    .join("\n");
  assert.throws(() => createOutcome(2, many, "/srv", "c"), /\/srv\/f9: .*\(and 2 more\)$/);
});

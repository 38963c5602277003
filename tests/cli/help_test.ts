import assert from "node:assert/strict";
import { cairn } from "../helpers/tmp.ts";

/** Every flag each subcommand parses (src/cli/<command>.ts), which its --help must name. */
const FLAGS: Record<string, string[]> = {
  daemon: ["--config"],
  backup: ["--label", "--json", "--config"],
  restore: [
    "--client",
    "--target",
    "--yes",
    "--flush",
    "--table",
    "--no-owner",
    "--keep-old",
    "--json",
    "--config",
  ],
  verify: ["--json", "--config"],
  list: ["--client", "--json", "--config"],
  jobs: ["--status", "--client", "--limit", "--json", "--config"],
  prune: ["--client", "--dry-run", "--json", "--config"],
  "config check": ["--probe", "--config"],
};

for (const [command, flags] of Object.entries(FLAGS)) {
  Deno.test({
    name: `cairn ${command} --help prints its usage and every flag, exit 0`,
    sanitizeResources: false,
    async fn() {
      const r = await cairn([...command.split(" "), "--help"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: cairn ${command}`));
      for (const flag of flags) assert.ok(r.stdout.includes(flag), `${command} help names ${flag}`);
      assert.equal(r.stderr, "");
    },
  });
}

Deno.test("cairn restore --help says what --target means for each kind", async () => {
  const r = await cairn(["restore", "-h"]);
  assert.equal(r.code, 0);
  for (const kind of ["postgres", "redis", "sqlite", "directory", "s3"]) {
    assert.match(r.stdout, new RegExp(`^\\s+${kind}\\s+\\S`, "m"), kind);
  }
});

Deno.test("a usage error shows that command's help, not the whole usage, exit 2", async () => {
  const r = await cairn(["backup"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^cairn: Missing argument: CLIENT\n\nUsage: cairn backup CLIENT/);
});

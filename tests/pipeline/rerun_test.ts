import assert from "node:assert/strict";
import { join } from "node:path";
import { readManifest } from "../../src/repository/manifest.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

Deno.test("a backup job whose key was fixed as .tar.gz (an earlier release, or other settings) writes what its key names", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "src"));
    await Deno.writeTextFile(join(dir, "src", "f.txt"), "hello\n");
    const services = await testServices(dir, { c: { kind: "directory", path: join(dir, "src") } });
    try {
      const key = "backups/c/20261130T000000000Z-manual.tar.gz";
      const b = await run(services, { kind: "backup", client_name: "c", key });
      assert.equal(b.status, "completed", b.error ?? "");
      assert.equal(b.result!.key, key);
      assert.deepEqual((await readManifest(services.repository, key)).transforms, [
        { name: "gzip", level: 6 },
      ]);
      const listing = await new Deno.Command("tar", {
        args: ["-tzf", join(dir, "repo", key)],
        stdout: "piped",
      }).output();
      assert.ok(listing.success);
      assert.match(new TextDecoder().decode(listing.stdout), /\.\/f\.txt/);
    } finally {
      await services.store.close();
    }
  });
});

import assert from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;

/** Every local module `entry` loads, as paths relative to the repository root. */
async function graph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: Array<{ specifier: string }>;
  };
  return info.modules.map((m) => m.specifier)
    .filter((s) => s.startsWith("file://"))
    .map((s) => new URL(s).pathname.slice(root.length));
}

Deno.test("layering: runtime never loads api (the daemon gets the app factory injected)", async () => {
  for (
    const entry of ["src/runtime/daemon.ts", "src/runtime/execute.ts", "src/runtime/worker_pool.ts"]
  ) {
    const api = (await graph(entry)).filter((p) => p.startsWith("src/api/"));
    assert.deepEqual(api, [], `${entry} loads api modules`);
  }
});

Deno.test("layering: engines never load the repository's storage implementations or runtime", async () => {
  for (const kind of ["directory", "postgres", "redis", "sqlite"]) {
    const mods = await graph(`src/engines/${kind}/engine.ts`);
    const bad = mods.filter((p) =>
      p.startsWith("src/runtime/") || p === "src/repository/fs.ts" || p === "src/repository/s3.ts"
    );
    assert.deepEqual(bad, [], `${kind} engine loads ${bad.join(", ")}`);
  }
});

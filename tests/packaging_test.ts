import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const unit = new URL("../scripts/cairn.service", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

Deno.test("packaging: the compile task includes every module Deno cannot see: hidden imports and workers", async () => {
  const task: string = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).tasks.compile;
  const included = new Set([...task.matchAll(/--include (\S+)/g)].map((m) => m[1]));
  const needed: string[] = [];
  for await (const file of sourceFiles(join(root, "src"))) {
    const text = await Deno.readTextFile(file);
    const hidden = [...text.matchAll(/unseen\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1]);
    const workers = [...text.matchAll(/new Worker\(\s*new URL\(\s*"([^"]+)"/g)].map((m) => m[1]);
    for (const specifier of [...hidden, ...workers]) {
      assert.match(specifier, /^\.\.?\//, `${file}: ${specifier} must be a relative module`);
      needed.push(relative(root, resolve(dirname(file), specifier)));
    }
  }
  assert.ok(needed.length >= 18, `found only ${needed.length} call sites: is the pattern stale?`);
  assert.deepEqual(needed.filter((path) => !included.has(path)), [], "missing from --include");
  for (const path of included) await Deno.stat(join(root, path)); // and nothing stale is listed
});

Deno.test("packaging: the systemd unit is hardened and restarts on failure", async () => {
  const text = await Deno.readTextFile(unit);
  for (
    const line of [
      "User=cairn",
      "ProtectSystem=strict",
      "ReadWritePaths=/var/lib/cairn",
      "NoNewPrivileges=true",
      "Restart=on-failure",
      "KillSignal=SIGTERM",
      "CapabilityBoundingSet=",
    ]
  ) {
    assert.ok(text.split("\n").includes(line), `missing ${line}`);
  }
  assert.ok(!/MemoryDenyWriteExecute=true/.test(text), "V8's JIT needs W+X memory");
  const stop = Number(/TimeoutStopSec=(\d+)s/.exec(text)?.[1]);
  assert.ok(stop > 25, "systemd waits longer than cairn's shutdown grace period");
});

/** Whether a command is on PATH, decided when the tests are registered (for `ignore`). */
function onPath(command: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${command}`).isFile;
    } catch {
      return false;
    }
  });
}

// .ci/run installs systemd for this; elsewhere a missing systemd-analyze is reported as ignored.
Deno.test("packaging: systemd-analyze accepts the unit", {
  ignore: !onPath("systemd-analyze"),
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The binary is not installed here; point ExecStart at one that is.
    const text = (await Deno.readTextFile(unit)).replace(
      "/usr/local/bin/cairn daemon",
      "/bin/true daemon",
    );
    await Deno.writeTextFile(`${dir}/cairn.service`, text);
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/cairn.service`],
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).split("\n").filter((l) =>
      l.includes("cairn.service")
    ).join("\n");
    assert.equal(stderr, "", stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const WRAPPER = new URL("../cairn", import.meta.url).pathname;

Deno.test({
  name: "packaging: ./cairn runs the CLI, and SIGTERM to it stops the daemon gracefully (exit 0)",
  sanitizeResources: false,
  async fn() {
    const version = await new Deno.Command(WRAPPER, { args: ["version"], stdout: "piped" })
      .output();
    assert.equal(version.code, 0);
    assert.match(new TextDecoder().decode(version.stdout), /^cairn \S+ \(deno 2\.9\.6\)/);

    const dir = await Deno.makeTempDir();
    try {
      const config = `${dir}/cairn.yaml`;
      await Deno.writeTextFile(
        config,
        JSON.stringify({
          server: { listen: "127.0.0.1:0" },
          store: { kind: "sqlite", path: `${dir}/cairn.db` },
          repository: { kind: "fs", path: `${dir}/repo` },
        }),
      );
      const child = new Deno.Command(WRAPPER, {
        args: ["daemon", "--config", config],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const lines: string[] = [];
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      let text = "";
      while (!text.includes('"cairn daemon started"')) {
        const { done, value } = await reader.read();
        if (done) break;
        text += value;
      }
      // The wrapper execs deno: its pid is the daemon's, so the signal reaches cairn itself.
      child.kill("SIGTERM");
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += value;
      }
      const status = await child.status;
      clearTimeout(timer);
      await child.stderr.cancel();
      lines.push(...text.trim().split("\n"));
      assert.equal(status.code, 0, text);
      assert.ok(lines.some((l) => l.includes('"msg":"Stopped"')), text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("packaging: the image takes pg_dump from the PostgreSQL project's repository, and GNU tar and zstd", async () => {
  const text = await Deno.readTextFile(join(root, "Dockerfile"));
  assert.match(text, /apt\.postgresql\.org\.sh -y/, "the PGDG repository is added");
  assert.match(text, /install -y --no-install-recommends postgresql-client\b/);
  for (const tool of ["tar", "zstd", "coreutils"]) {
    assert.match(text, new RegExp(`install -y[^\\n]* ${tool}\\b`), tool);
  }
});

Deno.test("packaging: the service config is valid and keeps its state where the unit lets it write", async () => {
  const { parseConfig } = await import("../src/config/load.ts");
  const config = parseConfig(
    await Deno.readTextFile(join(root, "config/cairn.service.yaml")),
    { env: () => undefined },
  );
  const text = await Deno.readTextFile(unit);
  const writable = [...text.matchAll(/^ReadWritePaths=(.+)$/gm)].flatMap((m) => m[1].split(" "));
  const under = (path: string) => writable.some((w) => path === w || path.startsWith(`${w}/`));
  assert.equal(config.store.kind, "sqlite");
  assert.ok(under(config.store.path), config.store.path);
  assert.equal(config.repository.kind, "fs");
  if (config.repository.kind === "fs") assert.ok(under(config.repository.path));
  assert.match(
    text,
    /ExecStart=\/usr\/local\/bin\/cairn daemon --config \/etc\/cairn\/cairn\.yaml/,
  );
  assert.match(text, /config\/cairn\.service\.yaml \/etc\/cairn\/cairn\.yaml/, "install line");
});

Deno.test("packaging: the daemon's lock file holds no test-only or build-only package", async () => {
  const lock = await Deno.readTextFile(join(root, "deno.lock"));
  for (const name of ["s3rver", "wabt", "koa", "winston", "smtp-server", "playwright"]) {
    assert.ok(!lock.includes(`npm:${name}@`) && !lock.includes(`"${name}@`), name);
  }
  const imports = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).imports;
  assert.ok(
    !("s3rver" in imports) && !("wabt" in imports),
    "test-only imports stay out of deno.json",
  );
  const tasks = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).tasks;
  assert.match(tasks.test, /--lock=deno\.test\.lock/);
});

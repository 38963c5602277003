import assert from "node:assert/strict";

const unit = new URL("../scripts/cairn.service", import.meta.url).pathname;

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

Deno.test("packaging: systemd-analyze accepts the unit", async () => {
  const analyze = await new Deno.Command("sh", {
    args: ["-c", "command -v systemd-analyze"],
    stdout: "piped",
  }).output();
  if (!analyze.success) {
    console.warn(
      "systemd-analyze is not installed: SKIPPING the unit syntax check (the directive checks above still ran)",
    );
    return;
  }
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

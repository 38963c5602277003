/**
 * Real filesystem faults for tests: a tiny tmpfs (disk full) and a read-only one.
 * Needs root (CI and the dev machines run as root); without it the test fails
 * with a message saying so rather than skipping silently.
 */
export async function mountTmpfs(
  dir: string,
  options: { sizeBytes: number; readOnly?: boolean },
): Promise<() => Promise<void>> {
  await Deno.mkdir(dir, { recursive: true });
  const opts = [`size=${options.sizeBytes}`, ...(options.readOnly ? ["ro"] : [])].join(",");
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", opts, "tmpfs", dir],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot mount a tmpfs at ${dir} (${new TextDecoder().decode(out.stderr).trim()}): ` +
        "the disk-full and read-only tests need root. Run the suite as root, or set CAIRN_TEST_SKIP_SERVICES=1 to skip them on purpose.",
    );
  }
  return async () => {
    await new Deno.Command("umount", { args: ["-l", dir] }).output();
  };
}

/** Runs a command as root without the capabilities that let root ignore file modes. */
export function withoutDacOverride(cmd: string[]): string[] {
  return [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    ...cmd,
  ];
}

/**
 * CAIRN_TEST_SKIP_SERVICES=1 skips the tests that need real mounts on purpose: they
 * are registered with `ignore`, so the summary counts them as ignored, never as passed.
 */
export const SKIP_FAULTS = Deno.env.get("CAIRN_TEST_SKIP_SERVICES") === "1";

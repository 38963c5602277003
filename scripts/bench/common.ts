/** What every benchmark shares: how cairn is run, and how a command is timed. */

import { join } from "node:path";
import { CAIRN_PERMISSIONS, MAIN } from "../../tests/helpers/tmp.ts";

/** The compiled binary's permissions and V8 flag (deno.json "compile"), so runs match production. */
export const CAIRN = [
  Deno.execPath(),
  "run",
  ...CAIRN_PERMISSIONS,
  "--v8-flags=--max-semi-space-size=1",
  MAIN,
];

/**
 * Writes `<dir>/<name>.yaml` for a benchmark run and returns its path: a SQLite store
 * and (unless `fields` names another) an fs repository of its own, one attempt per
 * job (a failing run must fail, not retry), plus `fields` (clients, server...).
 */
export async function writeConfig(
  dir: string,
  name: string,
  fields: Record<string, unknown>,
): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      store: { kind: "sqlite", path: join(dir, `${name}.db`) },
      repository: { kind: "fs", path: join(dir, `${name}-repo`) },
      backup: { worker_max_attempts: 1 },
      ...fields,
    }),
  );
  return path;
}

/**
 * Flushes dirty pages to disk: a timed step must not pay for writing back what an
 * earlier step (a baseline's output file, a generated data set) left in the cache.
 */
export async function settleDisk(): Promise<void> {
  await new Deno.Command("sync").output();
}

export interface Timed {
  seconds: number;
  rssMiB: number;
  /** User plus system CPU time of the command. */
  cpuSeconds: number;
  stdout: string;
}

/**
 * Runs a command under /usr/bin/time -v: wall time and peak RSS. With `env`, the
 * command gets only those variables (baseline tools must not inherit ours).
 */
export async function timed(
  cmd: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Timed> {
  const t = performance.now();
  const child = new Deno.Command("/usr/bin/time", {
    args: ["-v", ...cmd],
    env: options.env,
    clearEnv: options.env !== undefined,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin) await (await Deno.open(options.stdin)).readable.pipeTo(child.stdin);
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed:\n${stderr.slice(-2000)}`);
  return {
    seconds: (performance.now() - t) / 1000,
    rssMiB: Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1] ?? 0) / 1024,
    cpuSeconds: Number(/User time \(seconds\): ([\d.]+)/.exec(stderr)?.[1] ?? 0) +
      Number(/System time \(seconds\): ([\d.]+)/.exec(stderr)?.[1] ?? 0),
    stdout: new TextDecoder().decode(out.stdout),
  };
}

/** A real S3 server (s3rver) with the given buckets; credentials S3RVER / S3RVER. */
export async function startS3Server(
  dir: string,
  buckets: string[],
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const server = new URL("../../tests/helpers/s3_server.ts", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    // Direct: benchmark keys need no listing re-encoding, so no extra hop is timed.
    args: [
      "run",
      "-A",
      `--lock=${new URL("../../deno.test.lock", import.meta.url).pathname}`,
      server,
      dir,
      buckets.join(","),
      "direct",
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) text += (await reader.read()).value ?? "";
  reader.releaseLock();
  return {
    endpoint: `http://127.0.0.1:${JSON.parse(text).port}`,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

import { baseChildEnv } from "../process.ts";

/** The most stderr kept from one tar run; a tree that warns more is summarized by its start. */
const STDERR_KEEP = 4 * 1024 * 1024;

export interface TarProcess {
  child: Deno.ChildProcess;
  /** Exit code and the whole stderr (up to 4 MiB), once tar has exited. */
  done: Promise<{ code: number; stderr: string }>;
}

/**
 * Starts GNU tar with the C locale (its messages are parsed), without the daemon's
 * environment (no secret reaches it), and kills it when `signal` aborts.
 */
export function startTar(
  bin: string,
  args: string[],
  options: { stdin: "piped" | "null"; stdout: "piped" | "null"; signal: AbortSignal },
): TarProcess {
  const child = new Deno.Command(bin, {
    args,
    clearEnv: true,
    env: { ...baseChildEnv(), LC_ALL: "C" },
    stdin: options.stdin,
    stdout: options.stdout,
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  if (options.signal.aborted) kill();
  options.signal.addEventListener("abort", kill, { once: true });
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (text.length < STDERR_KEEP) text += chunk;
    }
    return text;
  })().catch(() => "");
  const done = child.status.then(async (status) => {
    options.signal.removeEventListener("abort", kill);
    return { code: status.code, stderr: await stderr };
  });
  return { child, done };
}

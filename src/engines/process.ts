import { CairnError } from "../errors.ts";
import { redact } from "../redact.ts";

export interface Tool {
  /** Started process; stdout/stdin as requested. */
  child: Deno.ChildProcess;
  /** The last lines the tool wrote to stderr, secrets masked. */
  stderr(): string;
  /** Resolves when the process has exited and its stderr has been read. */
  exited: Promise<Deno.CommandStatus>;
  kill(): void;
}

const STDERR_KEEP = 16 * 1024;

/**
 * Starts an external tool (pg_dump, pg_restore) with its stderr kept for error
 * messages and a kill tied to the job's AbortSignal. A missing binary is a
 * TOOL_MISSING error naming the setting that points at it.
 */
export function spawnTool(
  bin: string,
  args: string[],
  options: {
    env: Record<string, string>;
    stdin?: "piped" | "null";
    stdout?: "piped" | "null";
    signal?: AbortSignal;
    setting: string;
  },
): Tool {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(bin, {
      args,
      env: options.env,
      clearEnv: true,
      stdin: options.stdin ?? "null",
      stdout: options.stdout ?? "null",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw toolMissing(bin, options.setting, error);
  }
  let tail = "";
  const drained = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      tail = (tail + text).slice(-STDERR_KEEP);
    }
  })().catch(() => {});
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGTERM");
      setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5000).unref?.();
    } catch { /* already gone */ }
  };
  options.signal?.addEventListener("abort", kill, { once: true });
  const exited = child.status.then(async (status) => {
    options.signal?.removeEventListener("abort", kill);
    await drained;
    return status;
  });
  return { child, stderr: () => redact(tail), exited, kill };
}

export function toolMissing(bin: string, setting: string, cause?: unknown): CairnError {
  return new CairnError(
    "TOOL_MISSING",
    `${bin} could not be run (${
      (cause as Error)?.message ?? "not found"
    }): install the PostgreSQL client tools or point ${setting} at the binary`,
    { cause },
  );
}

/** The lines of a tool's stderr that explain a failure ("pg_dump: error: ..."), else its last lines. */
export function explain(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /error|fatal|detail|hint/i.test(l));
  return (errors.length ? errors : lines).slice(-6).join("; ");
}

import { join } from "node:path";
import { CairnError } from "../errors.ts";
import type { Scratch } from "../io/scratch.ts";
import { redact } from "../redact.ts";

/**
 * The variables every child may see: where to find programs, a locale and the time
 * zone. Nothing else of cairn's environment reaches a child (CAIRN_ADMIN_KEY, secrets
 * a config took from ${VAR}...): each spawn adds only what its tool needs.
 */
export function baseChildEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: "C.UTF-8",
  };
  const tz = Deno.env.get("TZ");
  if (tz) env.TZ = tz;
  return env;
}

/**
 * A file holding a secret that a child reads by path (libpq's PGPASSFILE). It is
 * written into the scratch root right before the child starts and removed the moment
 * the child exits, whatever happens; a crash in between leaves it in this process's
 * scratch directory, which the next sweep removes.
 */
export interface SecretFile {
  /** The variable that names the file to the child. */
  variable: string;
  content: string;
  scratch: Scratch;
}

const SECRET_FILE = Symbol("secretFile");

/** `env` plus a secret file that spawnTool writes per child (see SecretFile). */
export function withSecretFile(
  env: Record<string, string>,
  file: SecretFile,
): Record<string, string> {
  const out: Record<string, string> & { [SECRET_FILE]?: SecretFile } = { ...env };
  Object.defineProperty(out, SECRET_FILE, { value: file, enumerable: false });
  return out;
}

function secretFileOf(env: Record<string, string>): SecretFile | undefined {
  return (env as { [SECRET_FILE]?: SecretFile })[SECRET_FILE];
}

/**
 * Runs a short command to its end with a minimal environment (baseChildEnv plus
 * `env`), stdin closed: probes such as `pg_dump --version` and `sync -f`.
 * Throws what Deno.Command throws when the program cannot be started.
 */
export async function runCommand(
  bin: string,
  args: string[],
  options: { env?: Record<string, string>; stdout?: "piped" | "null"; stderr?: "piped" | "null" } =
    {},
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(bin, {
    args,
    env: { ...baseChildEnv(), ...(options.env ?? {}) },
    clearEnv: true,
    stdin: "null",
    stdout: options.stdout ?? "piped",
    stderr: options.stderr ?? "piped",
  }).output();
}

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
  const env = { ...options.env };
  const secret = secretFileOf(options.env);
  let secretDir: string | null = null;
  const removeSecret = () => {
    if (secretDir === null) return;
    try {
      Deno.removeSync(secretDir, { recursive: true });
    } catch { /* already gone */ }
    secretDir = null;
  };
  try {
    if (secret) {
      // Synchronous: the file exists exactly from here until the child is gone.
      secretDir = secret.scratch.dirSync("secret-");
      const path = join(secretDir, "secret");
      Deno.writeTextFileSync(path, secret.content, { mode: 0o600, createNew: true });
      env[secret.variable] = path;
    }
    child = new Deno.Command(bin, {
      args,
      env,
      clearEnv: true,
      stdin: options.stdin ?? "null",
      stdout: options.stdout ?? "null",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    removeSecret();
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
  const exited = child.status.finally(removeSecret).then(async (status) => {
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

import { CairnError } from "../../errors.ts";
import type { ArtifactAccess, EngineContext } from "../engine.ts";
import { explain, spawnTool, type Tool } from "../process.ts";
import { conninfoFor, type PgTarget, toolEnv } from "./conn.ts";
import { isPermanentToolFailure } from "./failure_kind.ts";
import { toolVersion } from "./tools.ts";

/**
 * A tool's failure, with the lines of its stderr that say why: SOURCE_REFUSED (not
 * retried) when they name a missing privilege, role or database, else
 * SOURCE_UNAVAILABLE.
 */
export function toolFailure(tool: Tool, name: string, status: Deno.CommandStatus): CairnError {
  const stderr = tool.stderr();
  const why = explain(stderr) || `exit code ${status.code}`;
  const code = isPermanentToolFailure(stderr) ? "SOURCE_REFUSED" : "SOURCE_UNAVAILABLE";
  return new CairnError(code, `${name} failed: ${why}`);
}

function restoreBin(ctx: EngineContext) {
  return toolVersion(ctx.tools.pg_restore, "tools.pg_restore (or CAIRN_PG_RESTORE_PATH)");
}

/**
 * Runs pg_restore on the plain archive: a restore on a checked plain scratch file
 * (`file`: pg_restore seeks, and --use-list reorders entries, which a pipe cannot
 * serve; damage is found before anything is restored), a listing fed through stdin
 * from the proven stream (it reads only the archive's head). Resolves with stdout
 * when `capture` is set.
 */
async function runOnArchive(
  ctx: EngineContext,
  artifact: ArtifactAccess,
  args: string[],
  env: Record<string, string>,
  options: { capture: boolean; file: boolean },
): Promise<string> {
  const bin = (await restoreBin(ctx)).bin;
  const plain = options.file ? await artifact.file() : null;
  try {
    return await runOn(ctx, bin, artifact, plain?.path ?? null, args, env, options.capture);
  } finally {
    await plain?.release();
  }
}

async function runOn(
  ctx: EngineContext,
  bin: string,
  artifact: ArtifactAccess,
  file: string | null,
  args: string[],
  env: Record<string, string>,
  capture: boolean,
): Promise<string> {
  const options = { capture };
  const tool = spawnTool(bin, file !== null ? [...args, "--", file] : args, {
    env,
    stdin: file !== null ? "null" : "piped",
    stdout: options.capture ? "piped" : "null",
    signal: ctx.signal,
    setting: "tools.pg_restore",
  });
  const output = options.capture ? new Response(tool.child.stdout).text() : Promise.resolve("");
  output.catch(() => {});
  let artifactError: unknown = null;
  if (file === null) {
    const writer = tool.child.stdin.getWriter();
    const reader = (await artifact.open()).getReader();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          artifactError = error;
          tool.kill();
          break;
        }
        if (chunk.done) break;
        try {
          await writer.write(chunk.value);
        } catch {
          break; // pg_restore stopped reading (a listing needs only the TOC): its status says why
        }
      }
      if (!artifactError) await writer.close().catch(() => {});
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
  const [status, text] = await Promise.all([tool.exited, output]);
  if (artifactError && !(options.capture && status.success)) throw artifactError;
  ctx.signal.throwIfAborted();
  if (!status.success) throw toolFailure(tool, "pg_restore", status);
  return text;
}

/** A child environment for pg_restore runs that only read the archive (no connection). */
function offlineEnv(): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/",
    LANG: "C.UTF-8",
  };
}

/** `pg_restore --list`: the archive's table of contents (reads only the archive's head). */
export function archiveList(ctx: EngineContext, artifact: ArtifactAccess): Promise<string> {
  return runOnArchive(ctx, artifact, ["--list"], offlineEnv(), {
    capture: true,
    file: false,
  });
}

/** `pg_restore --verbose --schema-only --file=-`: the DDL with TOC headers (see toc.ts). */
export function archiveScript(ctx: EngineContext, artifact: ArtifactAccess): Promise<string> {
  return runOnArchive(ctx, artifact, ["--verbose", "--schema-only", "--file=-"], offlineEnv(), {
    capture: true,
    file: false,
  });
}

export interface RestoreOptions {
  /** --no-owner --no-privileges: objects owned by the restoring role, no grants. */
  noOwner: boolean;
  /**
   * One transaction for everything: only for a few objects into a live database
   * (a table subset). A whole database commits object by object into a fresh
   * database instead: one transaction takes a lock per object, and a few thousand
   * tables exhaust a default server's lock table.
   */
  singleTransaction: boolean;
  /** --clean --if-exists: drop each restored object first. */
  clean: boolean;
  /** A `--use-list` file: restore only these TOC entries. */
  listFile?: string;
}

/** Restores the artifact into `database` on `server`; the password only ever in a passfile. */
export async function restoreInto(
  ctx: EngineContext,
  server: PgTarget,
  artifact: ArtifactAccess,
  database: string,
  options: RestoreOptions,
): Promise<void> {
  const { env, cleanup } = await toolEnv(server, ctx.scratch);
  try {
    const args = [
      `--dbname=${conninfoFor(database)}`,
      "--exit-on-error",
      "--no-password",
      ...(options.noOwner ? ["--no-owner", "--no-privileges"] : []),
      ...(options.singleTransaction ? ["--single-transaction"] : []),
      ...(options.clean ? ["--clean", "--if-exists"] : []),
      ...(options.listFile ? [`--use-list=${options.listFile}`] : []),
    ];
    ctx.progress({ bytes_done: 0, phase: "pg_restore" });
    await runOnArchive(ctx, artifact, args, env, { capture: false, file: true });
  } finally {
    await cleanup();
  }
}

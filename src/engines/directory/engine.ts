import { dirname, join, resolve } from "node:path";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import type {
  BackupFacts,
  Engine,
  EngineContext,
  RestoreRequest,
  VerifyRequest,
} from "../engine.ts";
import { refuseOccupied, removeQuietly, siblingTemp, sweepSiblingTemps } from "../fs_util.ts";
import { checkGnuTar, createArgs, createOutcome, extractArgs, STAGING_PREFIX } from "./gnu_tar.ts";
import { swapContents } from "./swap.ts";
import { countingTransform, countTar, type TarCounts } from "./tar_count.ts";
import { startTar } from "./tar_process.ts";
import { runCommand } from "../process.ts";
import { restoreTag, settleInterrupted } from "./interrupted.ts";

type DirectoryClient = Extract<ClientConfig, { kind: "directory" }>;

/**
 * The apparent size of what a backup of `root` will archive (bytes), by GNU du with
 * the client's exclude patterns and one_file_system; null when du cannot tell.
 */
async function estimateSize(
  root: string,
  client: { exclude: string[]; one_file_system: boolean },
): Promise<number | null> {
  const args = ["-s", "--apparent-size", "-B1", ...(client.one_file_system ? ["-x"] : [])];
  for (const pattern of client.exclude) args.push(`--exclude=${pattern}`);
  try {
    const out = await runCommand("du", [...args, "--", root], { stderr: "null" });
    const n = Number(new TextDecoder().decode(out.stdout).split("\t")[0]);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

async function checkSource(root: string, clientName: string): Promise<void> {
  // A restore into this directory killed part way would be backed up half swapped.
  await settleInterrupted(root, "the backup");
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) {
      throw new CairnError("SOURCE_REFUSED", `Cannot back up ${root}: not a directory`);
    }
    for await (const _ of Deno.readDir(root)) break;
  } catch (error) {
    if (error instanceof CairnError) throw error;
    const why = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (error as Error).message;
    // Missing or forbidden stays so until someone acts: another attempt cannot help.
    const permanent = error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.PermissionDenied;
    throw new CairnError(
      permanent ? "SOURCE_REFUSED" : "SOURCE_UNAVAILABLE",
      `Cannot read the directory ${root} of client ${clientName}: ${why}`,
    );
  }
}

/**
 * A directory as a pax tar.gz written by GNU tar (cairn counts the members it stores
 * with tar-stream); restore extracts with GNU tar into an empty staging directory and
 * then swaps the contents in, keeping the target directory itself.
 */
export const directoryEngine: Engine<DirectoryClient> = {
  kind: "directory",
  extension: "tar",

  async backup(ctx: EngineContext<DirectoryClient>) {
    const root = resolve(ctx.client.path);
    const version = await checkGnuTar(ctx.tools.tar);
    // Fail before creating anything when the source is plainly missing.
    await checkSource(root, ctx.clientName);
    const tar = startTar(
      ctx.tools.tar,
      createArgs(root, {
        exclude: ctx.client.exclude,
        oneFileSystem: ctx.client.one_file_system,
      }),
      { stdin: "null", stdout: "piped", signal: ctx.signal },
    );
    // bytes_total: the tree's apparent size, measured by du beside tar (an estimate: the
    // tar stream adds a 512-byte header per entry). Progress never waits for it.
    void estimateSize(root, ctx.client).then((total) => {
      if (total !== null && !ctx.signal.aborted) {
        ctx.progress({ bytes_total: total });
      }
    });
    // The counts are of the very bytes stored: the parser sits on the plain tar stream.
    const counting = countingTransform();
    const body = tar.child.stdout.pipeThrough(counting.transform);
    const facts = (async (): Promise<BackupFacts> => {
      const { code, stderr } = await tar.done;
      const report = createOutcome(code, stderr, root, ctx.clientName);
      const counts = await counting.counts;
      const all = {
        files: counts.files,
        bytes: counts.bytes,
        directories: counts.directories,
        symlinks: counts.symlinks,
        hardlinks: counts.hardlinks,
        special: counts.special,
        sockets_skipped: report.sockets_skipped,
        changed_while_reading: report.changed_while_reading,
      };
      // The job result keeps SPEC's files and bytes, plus the warning counts when there are any.
      const counters: Record<string, number> = { files: counts.files, bytes: counts.bytes };
      if (report.sockets_skipped) counters.sockets_skipped = report.sockets_skipped;
      if (report.changed_while_reading) {
        counters.changed_while_reading = report.changed_while_reading;
      }
      return {
        tool_versions: { tar: `GNU tar ${version.text}`, format: "tar (GNU tar, pax)" },
        facts: {
          path: root,
          ...all,
          exclude: ctx.client.exclude,
          one_file_system: ctx.client.one_file_system,
          warnings: report.warnings,
        },
        counters,
        warnings: report.warnings,
      };
    })();
    facts.catch(() => {});
    return {
      body,
      facts,
      cleanup: async () => {
        try {
          tar.child.kill("SIGKILL");
        } catch { /* exited */ }
        await tar.done.catch(() => {});
      },
    };
  },

  async restore(ctx: EngineContext<DirectoryClient>, request: RestoreRequest) {
    // Through a symlink to a directory, as the backup reads it: the directory is the target.
    const named = resolve(request.target ?? ctx.client.path);
    const target = await Deno.realPath(named).then(
      async (real) => (await Deno.stat(real)).isDirectory ? real : named,
      () => named,
    );
    // A restore killed part way is undone first, so the target holds what it held.
    await settleInterrupted(target, "this restore");
    // A restore to a new path killed part way left its staging directory beside it.
    await sweepSiblingTemps(target);
    await refuseOccupied(target, request.replace);
    await checkGnuTar(ctx.tools.tar);
    // The whole artifact against the manifest's sha256 before anything touches the disk.
    await request.check();
    ctx.signal.throwIfAborted();
    const before = await Deno.lstat(target).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    });
    if (before && !before.isDirectory) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Restore target ${target} exists and is not a directory: remove it or choose another target`,
      );
    }
    // Staging inside the target changes its mtime: a failed restore puts it back.
    const targetTimes = before ? await timesOf(target) : null;
    const tag = restoreTag(ctx.jobId);
    // In place, stage inside the target: same filesystem, and the directory itself stays.
    const staging = before ? join(target, STAGING_PREFIX + tag) : siblingTemp(target, "restore");
    if (!before) await Deno.mkdir(dirname(target), { recursive: true });
    await Deno.mkdir(staging, { mode: 0o700 });
    let swapped = false;
    try {
      const counts = await extract(ctx, request, staging);
      ctx.signal.throwIfAborted();
      if (!before) {
        // Archives from cairn's own tar writer (before GNU tar) have no entry for the root.
        if (!counts.root) await Deno.chmod(staging, 0o755);
        await Deno.rename(staging, target);
      } else {
        const root = await Deno.stat(staging);
        const rootTimes = counts.root ? await timesOf(staging) : targetTimes!;
        await swapContents(target, tag);
        swapped = true;
        try {
          // swapContents emptied and removed the staging directory.
          if (counts.root) await applyRootOwnerMode(target, root);
          await setTimes(target, rootTimes);
        } catch (error) {
          // The contents are in: this is not a failed restore to roll back.
          throw new CairnError(
            "INTERNAL",
            `The contents of ${target} were restored, but its own owner, mode or times could not be set: ${
              (error as Error).message
            }`,
            { cause: error },
          );
        }
      }
      return { target, files: counts.files, bytes: counts.bytes, in_place: before !== null };
    } catch (error) {
      await removeQuietly(staging);
      if (targetTimes && !swapped) await setTimes(target, targetTimes).catch(() => {});
      throw error;
    }
  },

  async verify(ctx: EngineContext<DirectoryClient>, request: VerifyRequest) {
    const counts = await countTar(await request.open());
    ctx.signal.throwIfAborted();
    const expected = request.manifest.facts as { files?: number; bytes?: number };
    const problems: string[] = [];
    if (expected.files !== counts.files) {
      problems.push(`${counts.files} files in the archive, the manifest says ${expected.files}`);
    }
    if (expected.bytes !== counts.bytes) {
      problems.push(`${counts.bytes} bytes of file data, the manifest says ${expected.bytes}`);
    }
    if (problems.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `Backup ${request.manifest.key} does not match its manifest: ${problems.join("; ")}`,
      );
    }
    return {
      files: counts.files,
      bytes: counts.bytes,
      directories: counts.directories,
      symlinks: counts.symlinks,
      hardlinks: counts.hardlinks,
    };
  },
};

/** Extracts the checked artifact into the empty `staging` directory with GNU tar. */
async function extract(
  ctx: EngineContext<DirectoryClient>,
  request: RestoreRequest,
  staging: string,
): Promise<TarCounts> {
  const tar = startTar(ctx.tools.tar, extractArgs(staging, { asRoot: Deno.uid() === 0 }), {
    stdin: "piped",
    stdout: "null",
    signal: ctx.signal,
  });
  const counting = countingTransform();
  let done = 0;
  const progress = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      done += chunk.byteLength;
      ctx.progress({ bytes_done: done, phase: "extracting" });
      controller.enqueue(chunk);
    },
  });
  // Progress counts the plain tar bytes the pipeline hands over (bytes_total is the
  // plain artifact's size, see runtime/execute.ts).
  const fed = (await request.open())
    .pipeThrough(progress)
    .pipeThrough(counting.transform)
    .pipeTo(tar.child.stdin, { signal: ctx.signal })
    .catch((error) => error);
  const [{ code, stderr }, feedError] = await Promise.all([tar.done, fed]);
  ctx.signal.throwIfAborted();
  if (code !== 0) {
    const lines = stderr.split("\n").map((l) => l.trim()).filter((l) =>
      l && !/Exiting with failure status/.test(l)
    );
    throw new CairnError(
      "VERIFY_FAILED",
      `GNU tar refused to restore ${request.manifest.key} (exit status ${code}); nothing was changed in the target: ${
        lines.slice(0, 10).join("; ") || "no message"
      }`,
    );
  }
  if (feedError) throw feedError;
  return await counting.counts;
}

/** A directory's atime and mtime to the nanosecond, as GNU stat prints them. */
async function timesOf(path: string): Promise<[string, string]> {
  const out = await runCommand("stat", ["--printf=%x\\n%y", "--", path], { env: { LC_ALL: "C" } });
  if (!out.success) {
    throw new CairnError(
      "INTERNAL",
      `stat ${path} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  const [atime, mtime] = new TextDecoder().decode(out.stdout).split("\n");
  return [atime, mtime];
}

/** Sets a directory's times to the nanosecond (Deno.utime keeps milliseconds). */
async function setTimes(path: string, [atime, mtime]: [string, string]): Promise<void> {
  for (const [flag, when] of [["-a", atime], ["-m", mtime]]) {
    const out = await runCommand("touch", [flag, "-d", when, "--", path], {
      env: { LC_ALL: "C" },
      stdout: "null",
    });
    if (!out.success) {
      throw new CairnError(
        "INTERNAL",
        `touch ${path} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
  }
}

/** Gives `target` the archived root's owner and mode (owner only as root, as tar does). */
async function applyRootOwnerMode(target: string, root: Deno.FileInfo): Promise<void> {
  if (Deno.uid() === 0) await Deno.chown(target, root.uid, root.gid);
  await Deno.chmod(target, root.mode! & 0o7777);
}

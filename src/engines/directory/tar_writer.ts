import { join } from "node:path";
import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { BLOCK, encodeHeader, paddingFor, type TarHeader } from "./tar_format.ts";

export interface ArchiveStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  skipped: number;
  changed_while_reading: number;
}

const CHUNK = 1 << 18;

function sourceError(error: unknown, path: string): CairnError {
  const e = error as Error;
  if (e instanceof CairnError) return e;
  const why = e instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : e instanceof Deno.errors.NotFound
    ? "it does not exist"
    : e.message;
  return new CairnError("SOURCE_UNAVAILABLE", `Cannot read ${path}: ${why}`, { cause: error });
}

async function* walk(
  root: string,
  rel: string,
): AsyncGenerator<{ rel: string; abs: string; info: Deno.FileInfo }> {
  const dir = rel ? join(root, rel) : root;
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (error) {
    throw sourceError(error, dir);
  }
  names.sort();
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    const abs = join(root, childRel);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(abs);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // deleted while we walked: not part of this backup
      throw sourceError(error, abs);
    }
    yield { rel: childRel, abs, info };
    if (info.isDirectory) yield* walk(root, childRel);
  }
}

/**
 * The directory as an uncompressed tar stream: modes, mtimes and owners kept,
 * symlinks stored as links and never followed, sockets and devices skipped.
 * A file that changes size while read is padded or cut to its header size.
 */
export function archiveDirectory(
  root: string,
  options: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {},
): { stream: ReadableStream<Uint8Array>; stats: Promise<ArchiveStats> } {
  const stats: ArchiveStats = {
    files: 0,
    directories: 0,
    symlinks: 0,
    bytes: 0,
    skipped: 0,
    changed_while_reading: 0,
  };
  let resolveStats!: (s: ArchiveStats) => void;
  let rejectStats!: (e: unknown) => void;
  const done = new Promise<ArchiveStats>((res, rej) => {
    resolveStats = res;
    rejectStats = rej;
  });
  done.catch(() => {});

  async function* generate(): AsyncGenerator<Uint8Array> {
    try {
      const rootInfo = await Deno.stat(root).catch((error) => {
        throw sourceError(error, root);
      });
      if (!rootInfo.isDirectory) {
        throw new CairnError("SOURCE_UNAVAILABLE", `Cannot back up ${root}: not a directory`);
      }
      for await (const { rel, abs, info } of walk(root, "")) {
        options.signal?.throwIfAborted();
        const base: TarHeader = {
          path: rel,
          type: "file",
          mode: info.mode ?? 0o644,
          uid: info.uid ?? 0,
          gid: info.gid ?? 0,
          size: 0,
          mtime: Math.floor((info.mtime?.getTime() ?? 0) / 1000),
          linkpath: "",
        };
        if (info.isDirectory) {
          stats.directories++;
          yield* encodeHeader({ ...base, path: rel + "/", type: "dir" });
        } else if (info.isSymlink) {
          stats.symlinks++;
          const target = await Deno.readLink(abs).catch((error) => {
            throw sourceError(error, abs);
          });
          yield* encodeHeader({ ...base, type: "symlink", linkpath: target });
        } else if (info.isFile) {
          let file: Deno.FsFile;
          try {
            file = await Deno.open(abs, { read: true });
          } catch (error) {
            if (error instanceof Deno.errors.NotFound) continue;
            throw sourceError(error, abs);
          }
          try {
            stats.files++;
            yield* encodeHeader({ ...base, size: info.size });
            let left = info.size;
            while (left > 0) {
              options.signal?.throwIfAborted();
              const buf = new Uint8Array(Math.min(CHUNK, left));
              const n = await file.read(buf);
              if (n === null) {
                stats.changed_while_reading++;
                logger.warn("File shrank while being archived; padded with zeros", { path: abs });
                yield new Uint8Array(left);
                stats.bytes += left;
                left = 0;
                break;
              }
              left -= n;
              stats.bytes += n;
              options.onBytes?.(stats.bytes);
              yield n === buf.length ? buf : buf.subarray(0, n);
            }
            const pad = paddingFor(info.size);
            if (pad) yield new Uint8Array(pad);
          } finally {
            file.close();
          }
        } else {
          stats.skipped++;
          logger.warn("Skipped a special file (socket, fifo or device)", { path: abs });
        }
      }
      yield new Uint8Array(BLOCK * 2);
      resolveStats(stats);
    } catch (error) {
      rejectStats(error);
      throw error;
    }
  }

  return { stream: ReadableStream.from(generate()), stats: done };
}

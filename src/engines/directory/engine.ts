import { resolve } from "node:path";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { VERSION } from "../../version.ts";
import type {
  BackupFacts,
  Engine,
  EngineContext,
  RestoreRequest,
  VerifyRequest,
} from "../engine.ts";
import { refuseOccupied, removeQuietly, siblingTemp } from "../fs_util.ts";
import { Extractor } from "./extract.ts";
import { readTar } from "./tar_reader.ts";
import { archiveDirectory } from "./tar_writer.ts";

type DirectoryClient = Extract<ClientConfig, { kind: "directory" }>;

function gunzip(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
}

/** A directory as a streamed tar.gz; restore extracts beside the target and swaps it in. */
export const directoryEngine: Engine<DirectoryClient> = {
  kind: "directory",
  extension: "tar.gz",

  async backup(ctx: EngineContext<DirectoryClient>) {
    const root = resolve(ctx.client.path);
    // Fail before creating anything when the source is plainly missing or unreadable.
    try {
      const info = await Deno.stat(root);
      if (!info.isDirectory) {
        throw new CairnError("SOURCE_UNAVAILABLE", `Cannot back up ${root}: not a directory`);
      }
      for await (const _ of Deno.readDir(root)) break;
    } catch (error) {
      if (error instanceof CairnError) throw error;
      const why = error instanceof Deno.errors.NotFound
        ? "it does not exist"
        : error instanceof Deno.errors.PermissionDenied
        ? "permission denied"
        : (error as Error).message;
      throw new CairnError(
        "SOURCE_UNAVAILABLE",
        `Cannot read the directory ${root} of client ${ctx.clientName}: ${why}`,
      );
    }
    // Progress is the bytes stored, reported by the job runner; the archive is the source of them.
    const archive = archiveDirectory(root, { signal: ctx.signal });
    const body = archive.stream.pipeThrough(
      new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
    const facts = archive.stats.then((s): BackupFacts => ({
      tool_versions: { cairn: VERSION, format: "tar+gzip (ustar/pax)" },
      facts: { path: root, ...s },
      counters: { files: s.files, bytes: s.bytes },
    }));
    return { body, facts };
  },

  async restore(ctx: EngineContext<DirectoryClient>, request: RestoreRequest) {
    const target = resolve(request.target ?? ctx.client.path);
    await refuseOccupied(target, request.replace);
    const staging = siblingTemp(target, `restore-${ctx.jobId}`);
    const old = siblingTemp(target, `old-${ctx.jobId}`);
    try {
      await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
      const extractor = new Extractor(staging);
      for await (const entry of readTar(gunzip(await request.open()))) {
        ctx.signal.throwIfAborted();
        await extractor.write(
          entry,
          ctx.signal,
          (b) => ctx.progress({ bytes_done: b, phase: "extracting" }),
        );
      }
      await extractor.finish();
      // Only a whole, checksum-verified archive replaces what is there.
      const existed = await Deno.lstat(target).then(() => true, () => false);
      if (existed) await Deno.rename(target, old);
      await Deno.rename(staging, target);
      if (existed) await removeQuietly(old);
      return { target, files: extractor.files, bytes: extractor.bytes };
    } catch (error) {
      await removeQuietly(staging);
      throw error;
    }
  },

  async verify(ctx: EngineContext<DirectoryClient>, request: VerifyRequest) {
    let files = 0, bytes = 0, directories = 0, symlinks = 0;
    for await (const entry of readTar(gunzip(await request.open()))) {
      ctx.signal.throwIfAborted();
      if (entry.header.type === "file") {
        files++;
        for await (const chunk of entry.body) bytes += chunk.byteLength;
      } else if (entry.header.type === "dir") directories++;
      else if (entry.header.type === "symlink") symlinks++;
    }
    const expected = request.manifest.facts as { files?: number; bytes?: number };
    const problems: string[] = [];
    if (expected.files !== files) {
      problems.push(`${files} files in the archive, the manifest says ${expected.files}`);
    }
    if (expected.bytes !== bytes) {
      problems.push(`${bytes} bytes of file data, the manifest says ${expected.bytes}`);
    }
    if (problems.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `Backup ${request.manifest.key} does not match its manifest: ${problems.join("; ")}`,
      );
    }
    return { files, bytes, directories, symlinks };
  },
};

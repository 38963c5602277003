import tarStream from "tar-stream";
import { CairnError } from "../../errors.ts";

/**
 * Counts of a tar stream's members, read with the npm `tar-stream` parser (pax, GNU and
 * ustar headers). `files`/`bytes` are the manifest facts that verify checks again.
 */
export interface TarCounts {
  /** Regular files whose data is in the archive (hard links to them not counted). */
  files: number;
  /** Apparent size of those files in bytes (a sparse file's full size, GNU.sparse.realsize). */
  bytes: number;
  /** Directories other than the root `./`. */
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** FIFOs and device nodes. */
  special: number;
  /** Whether the archive has the root directory's own entry (`./`; archives before 0.2 do not). */
  root: boolean;
}

export function emptyCounts(): TarCounts {
  return {
    files: 0,
    bytes: 0,
    directories: 0,
    symlinks: 0,
    hardlinks: 0,
    special: 0,
    root: false,
  };
}

/** The header fields counted (a subset of tar-stream's Header). */
export interface Header {
  name: string;
  size?: number;
  type?: string | null;
  pax?: unknown;
}

/** Adds one member to the counts. Pure. */
export function countMember(counts: TarCounts, header: Header): void {
  const name = header.name.replace(/^(\.\/)+/, "./");
  switch (header.type) {
    case "file":
    case "contiguous-file": {
      counts.files++;
      const pax = (header.pax ?? {}) as Record<string, string>;
      // GNU sparse 1.0 members carry the stored data size; the file's own is in the pax record.
      const real = pax["GNU.sparse.realsize"] ?? pax["GNU.sparse.size"];
      counts.bytes += real !== undefined ? Number(real) : header.size ?? 0;
      break;
    }
    case "directory":
      if (name === "./" || name === "." || name === "") counts.root = true;
      else counts.directories++;
      break;
    case "symlink":
      counts.symlinks++;
      break;
    case "link":
      counts.hardlinks++;
      break;
    case "fifo":
    case "character-device":
    case "block-device":
      counts.special++;
      break;
  }
}

/**
 * A pass-through transform that also parses the tar stream it carries and resolves
 * `counts` at its end. Each chunk is handed to the parser before it is passed on, and
 * the next is taken only once the parser has consumed it, so memory stays flat. A
 * stream that is not a whole tar archive rejects `counts` (the bytes still pass).
 */
export function countingTransform(): {
  transform: TransformStream<Uint8Array, Uint8Array>;
  counts: Promise<TarCounts>;
} {
  const counts = emptyCounts();
  const extract = tarStream.extract();
  let settle!: { resolve: (c: TarCounts) => void; reject: (e: unknown) => void };
  const done = new Promise<TarCounts>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => {});
  let failed: unknown = null;
  extract.on("entry", (header, body, next) => {
    countMember(counts, header);
    body.on("end", next);
    body.resume();
  });
  extract.on("finish", () => settle.resolve(counts));
  extract.on("error", (error: unknown) => {
    failed = error;
    settle.reject(
      new CairnError(
        "VERIFY_FAILED",
        `The archive is not a readable tar stream: ${(error as Error)?.message ?? error}`,
        { cause: error },
      ),
    );
  });
  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      if (failed === null) {
        if (!extract.write(chunk)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              extract.off("drain", go);
              extract.off("error", go);
              resolve();
            };
            extract.on("drain", go);
            extract.on("error", go);
          });
        }
      }
      controller.enqueue(chunk);
    },
    flush() {
      if (failed === null) extract.end(undefined);
    },
  });
  return { transform, counts: done };
}

/** Reads a whole tar stream and counts its members. */
export async function countTar(stream: ReadableStream<Uint8Array>): Promise<TarCounts> {
  const { transform, counts } = countingTransform();
  const reader = stream.pipeThrough(transform).getReader();
  while (!(await reader.read()).done) { /* counted as it passes */ }
  return await counts;
}

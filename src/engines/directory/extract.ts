import { dirname, join, normalize } from "node:path";
import { CairnError } from "../../errors.ts";
import type { TarEntry } from "./tar_reader.ts";

/** Refuses any archive path that could land outside the restore directory. */
export function safeEntryPath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  if (trimmed === "" || trimmed === ".") return "";
  if (
    trimmed.includes("\0") || trimmed.startsWith("/") ||
    trimmed.split("/").some((p) => p === "..")
  ) {
    throw new CairnError(
      "VERIFY_FAILED",
      `Refusing archive entry ${JSON.stringify(path)}: it points outside the target`,
    );
  }
  return normalize(trimmed.replace(/^(\.\/)+/, ""));
}

/**
 * Writes tar entries under `root`. Entries beneath a symlink the archive created are
 * refused, so a crafted archive cannot write through a link to elsewhere.
 */
export class Extractor {
  readonly #root: string;
  readonly #symlinks = new Set<string>();
  readonly #dirs: Array<{ path: string; mode: number; mtime: number; uid: number; gid: number }> =
    [];
  readonly #asRoot = Deno.uid() === 0;
  files = 0;
  bytes = 0;

  constructor(root: string) {
    this.#root = root;
  }

  #check(rel: string): void {
    let p = rel;
    while (p.includes("/")) {
      p = p.slice(0, p.lastIndexOf("/"));
      if (this.#symlinks.has(p)) {
        throw new CairnError(
          "VERIFY_FAILED",
          `Refusing archive entry ${rel}: it lies beneath the symlink ${p}`,
        );
      }
    }
  }

  async write(entry: TarEntry, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
    const { header } = entry;
    const rel = safeEntryPath(header.path);
    if (rel === "") return;
    this.#check(rel);
    const abs = join(this.#root, rel);
    const mtime = new Date(header.mtime * 1000);
    switch (header.type) {
      case "dir":
        await Deno.mkdir(abs, { recursive: true });
        this.#dirs.push({
          path: abs,
          mode: header.mode,
          mtime: header.mtime,
          uid: header.uid,
          gid: header.gid,
        });
        break;
      case "symlink":
        await Deno.mkdir(dirname(abs), { recursive: true });
        await Deno.remove(abs).catch(() => {});
        await Deno.symlink(header.linkpath, abs);
        this.#symlinks.add(rel);
        await this.#chown(abs, header.uid, header.gid, true);
        break;
      case "file": {
        await Deno.mkdir(dirname(abs), { recursive: true });
        const file = await Deno.open(abs, {
          write: true,
          create: true,
          truncate: true,
          mode: 0o600,
        });
        try {
          for await (const chunk of entry.body) {
            signal?.throwIfAborted();
            let off = 0;
            while (off < chunk.byteLength) off += await file.write(chunk.subarray(off));
            this.bytes += chunk.byteLength;
            onBytes?.(this.bytes);
          }
        } finally {
          file.close();
        }
        this.files++;
        await Deno.chmod(abs, header.mode & 0o7777);
        await this.#chown(abs, header.uid, header.gid, false);
        await Deno.utime(abs, mtime, mtime);
        break;
      }
      case "link":
        throw new CairnError(
          "VERIFY_FAILED",
          `Hard link entries are not supported: ${header.path}`,
        );
      default:
        break; // unknown special entries carry nothing to restore
    }
  }

  async #chown(path: string, uid: number, gid: number, link: boolean): Promise<void> {
    if (!this.#asRoot) return;
    try {
      if (link) {
        const { lchown } = await import("node:fs/promises");
        await lchown(path, uid, gid);
      } else await Deno.chown(path, uid, gid);
    } catch { /* ownership is best effort: the data is what matters */ }
  }

  /** Directory modes and mtimes last, deepest first, after their contents were written. */
  async finish(): Promise<void> {
    for (const d of this.#dirs.reverse()) {
      await this.#chown(d.path, d.uid, d.gid, false);
      await Deno.chmod(d.path, d.mode & 0o7777).catch(() => {});
      const t = new Date(d.mtime * 1000);
      await Deno.utime(d.path, t, t).catch(() => {});
    }
  }
}

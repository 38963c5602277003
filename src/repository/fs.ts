import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { CairnError } from "../errors.ts";
import { syncDirSync } from "../io/fs_sync.ts";
import { fileChunks } from "../io/file_chunks.ts";
import { gather, openReader } from "./gather.ts";
import { contentHasher } from "../io/hashing.ts";
import { assertSafeKey } from "./paths.ts";
import { ownerTag } from "../io/process_id.ts";
import { objectExists } from "./capabilities.ts";
import { logger } from "../log.ts";
import { runCommand } from "../engines/process.ts";
import type {
  ByteRange,
  LinkCheck,
  ObjectInfo,
  PutOptions,
  PutResult,
  Repository,
  RepositoryCapabilities,
} from "./repository.ts";

const TMP_DIR = ".tmp";
/** Writes of artifacts go in units of this size. */
const IO_CHUNK = 1024 * 1024;
const RANGE_CHUNK = 256 * 1024;
/**
 * Write buffers kept for reuse, one per concurrent put, as many as a mirror runs: a
 * fresh MiB per small object (zeroed, faulted in, then garbage) cost more than the
 * writes it saved.
 */
const SPARE_BUFFERS = 16;
/** fsyncs at once when a batch sync has to sync file by file. */
const SYNC_LANES = 8;
/**
 * A hard link this filesystem cannot make, which is no failure of the repository:
 * EPERM (no hard links, e.g. some FUSE or SMB mounts), EXDEV (another filesystem
 * mounted inside the repository), EMLINK (the file at its link limit: 65,000 on
 * ext4), EOPNOTSUPP (Linux errno 1, 18, 31, 95).
 */
const CANNOT_LINK = /os error (1|18|31|95)\b|EPERM|EXDEV|EMLINK|EOPNOTSUPP|ENOTSUP/;

/**
 * Makes everything written to the filesystem holding `path` durable (syncfs(2));
 * false when that could not be done, so the caller syncs file by file instead.
 */
export type FilesystemSync = (path: string) => Promise<boolean>;

/** coreutils' `sync -f`: Deno has no syncfs(2) of its own. */
export async function syncFilesystem(path: string): Promise<boolean> {
  try {
    const out = await runCommand("sync", ["-f", path], { stdout: "null", stderr: "null" });
    return out.success;
  } catch {
    return false; // not installed, or not allowed to run
  }
}

async function syncFile(path: string): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return; // removed or replaced since
    throw error;
  }
  try {
    await file.sync();
  } finally {
    file.close();
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await file.write(bytes.subarray(off));
}

/** Turns an OS error on the repository into one an operator can act on. */
function repositoryError(error: unknown, action: string, root: string): Error {
  if (error instanceof CairnError) return error;
  const e = error as Error & { code?: string };
  const text = `${e?.name ?? ""} ${e?.message ?? ""} ${e?.code ?? ""}`;
  if (/ENOSPC|No space left|StorageFull|os error 28/i.test(text)) {
    return new CairnError(
      "DISK_FULL",
      `No space left on device while ${action} in the repository ${root}`,
      { cause: error },
    );
  }
  if (
    e instanceof Deno.errors.PermissionDenied ||
    /EACCES|EPERM|EROFS|Read-only|os error 13|os error 30/i.test(text)
  ) {
    return new CairnError(
      "REPOSITORY_UNAVAILABLE",
      `The repository ${root} is not writable (${e.message}): fix its permissions or repository.path`,
      { cause: error },
    );
  }
  if (e?.name === "AbortError") return e;
  return new CairnError(
    "REPOSITORY_UNAVAILABLE",
    `Failed ${action} in the repository ${root}: ${e?.message ?? e}`,
    {
      cause: error,
    },
  );
}

/**
 * A repository in a local directory. A put writes `.tmp/<writer>-<random>.part`,
 * fsyncs it, renames it into place and fsyncs the directory, so a key is either
 * absent or whole; nothing ever writes into a stored file in place. Capabilities:
 * `move` (a rename), `link` (a hard link made under `.tmp/`, checked there, then
 * renamed over the key), `batch` (a mirror's puts, moves and links rename without
 * syncing; its sync() makes them durable with one syncfs), `partialWrites` (the
 * `.tmp/` files of killed writers), and `putIfAbsent` (the part published by
 * link(2), which never replaces an existing key).
 */
export class FsRepository implements Repository {
  readonly kind = "fs" as const;
  readonly root: string;
  #spareBuffers: Uint8Array[] = [];
  /** Deferred puts not yet synced: their files and the directories naming them. */
  #unsyncedFiles: string[] = [];
  #unsyncedDirs = new Set<string>();
  /** Syncs run one after another; once one failed, every later one fails too. */
  #syncQueue: Promise<void> = Promise.resolve();
  #syncFailure: Error | null = null;
  #knownDirs = new Set<string>();
  /** Set once link(2) answered that this filesystem has no hard links. */
  #linksUnsupported = false;
  readonly #syncFilesystem: FilesystemSync;
  readonly capabilities: RepositoryCapabilities = {
    move: (from, to) => this.#move(from, to, false),
    link: (from, to, check) => this.#link(from, to, check, false),
    batch: {
      put: (key, body, options) => this.#put(key, body, options, true),
      move: (from, to) => this.#move(from, to, true),
      link: (from, to, check) => this.#link(from, to, check, true),
      sync: () => this.#syncDeferred(),
    },
    partialWrites: {
      list: () => this.#partialNames(),
      sweep: (olderThanMs, writerIsDead) => this.#sweepPartial(olderThanMs, writerIsDead),
    },
    putIfAbsent: (key, body, options) => this.#put(key, body, options, false, true),
  };

  constructor(root: string, options: { syncFilesystem?: FilesystemSync } = {}) {
    this.root = resolve(root);
    this.#syncFilesystem = options.syncFilesystem ?? syncFilesystem;
  }

  get location(): string {
    return this.root;
  }

  #path(key: string): string {
    assertSafeKey(key);
    const full = join(this.root, ...key.split("/"));
    const rel = relative(this.root, full);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
      throw new CairnError("INVALID_KEY", "Invalid repository key: it leaves the repository");
    }
    return full;
  }

  put(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<PutResult> {
    return this.#put(key, body, options, false);
  }

  /**
   * With `deferred`, the file and its new name are synced by the next #syncDeferred().
   * With `exclusive`, the part is published by link(2) instead of rename(2): link
   * fails with EEXIST when the key exists, atomically (rename would replace it), so
   * the existing object stays as it was (OBJECT_EXISTS); the part is then unlinked.
   */
  async #put(
    key: string,
    body: ReadableStream<Uint8Array>,
    options: PutOptions = {},
    deferred: boolean,
    exclusive = false,
  ): Promise<PutResult> {
    const final = this.#path(key);
    const tmpDir = join(this.root, TMP_DIR);
    // Named by the writing process, so a sweep removes a dead writer's part at once.
    const tmp = join(tmpDir, `${ownerTag()}-${crypto.randomUUID()}.part`);
    const { signal } = options;
    const hasher = contentHasher(options.onProgress);
    // Read and hashed here, not through a TransformStream: a mirror's thousands of
    // bodies arrive in tens of thousands of chunks, and each hop costs.
    const reader = openReader(body);
    // Cancelling the body wakes a read that waits for bytes; it then looks like the
    // end of the body, so the loop checks the signal before trusting an end.
    const onAbort = () => reader.cancel(signal?.reason).catch(() => {});
    signal?.addEventListener("abort", onAbort, { once: true });
    let file: Deno.FsFile | null = null;
    let buffer: Uint8Array | null = null;
    try {
      signal?.throwIfAborted();
      const create = { write: true, createNew: true, mode: 0o640 } as const;
      await this.#ensureDir(tmpDir);
      file = await Deno.open(tmp, create).catch(async (error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        this.#knownDirs.clear();
        await this.#ensureDir(tmpDir);
        return await Deno.open(tmp, create);
      });
      const out = file;
      buffer = await gather(
        reader,
        this.#spareBuffers.pop() ?? new Uint8Array(IO_CHUNK),
        (chunk) => hasher.update(chunk),
        (filled) => writeAll(out, filled),
      );
      signal?.throwIfAborted();
      // Only an abort cancels the body here; an end that was a cancel is never stored.
      if (buffer === null) throw new Error("the source was cancelled before its end");
      if (!deferred) await file.sync();
      file.close();
      file = null;
      const publish = exclusive
        ? () => this.#linkOrLook(tmp, final)
        : () => Deno.rename(tmp, final);
      await this.#ensureDir(dirname(final));
      await publish().catch(async (error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // Someone removed the directory since it was made: make it again, once.
        this.#knownDirs.clear();
        await this.#ensureDir(dirname(final));
        await publish();
      }).catch((error) => {
        throw exclusive && error instanceof Deno.errors.AlreadyExists ? objectExists(key) : error;
      });
      // The key holds the bytes now; the part's own name goes (the sweep removes it
      // should this process die first: a second name for the same file).
      if (exclusive) {
        await Deno.remove(tmp).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error; // renamed: see #linkOrLook
        });
      }
      if (deferred) {
        this.#unsyncedFiles.push(final);
        this.#unsyncedDirs.add(dirname(final));
      } else syncDirSync(dirname(final));
      return hasher.result();
    } catch (error) {
      // A failed write must not leave the source (an HTTP body, a child's stdout) stalled.
      reader.cancel(error).catch(() => {});
      try {
        file?.close();
      } catch { /* already closed */ }
      await Deno.remove(tmp).catch(() => {});
      if (signal?.aborted) throw signal.reason ?? error;
      throw repositoryError(error, `writing ${key}`, this.root);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // A failed or cancelled read may have taken the memory with it.
      if (buffer?.byteLength === IO_CHUNK && this.#spareBuffers.length < SPARE_BUFFERS) {
        this.#spareBuffers.push(buffer);
      }
    }
  }

  /**
   * Publishes `tmp` at `final` with link(2), which fails with EEXIST when the key
   * exists. A filesystem without hard links (vfat, some network and FUSE ones)
   * answers EPERM or EOPNOTSUPP (link(2)): there the key is looked at, then the part
   * renamed, with a warning once per process, since a writer that publishes between
   * the two is replaced (the race the capability exists to close).
   */
  async #linkOrLook(tmp: string, final: string): Promise<void> {
    if (!this.#linksUnsupported) {
      try {
        return await Deno.link(tmp, final);
      } catch (error) {
        const text = `${(error as Error)?.message ?? ""} ${
          (error as { code?: string })?.code ?? ""
        }`;
        const unsupported = error instanceof Deno.errors.NotSupported ||
          /EPERM|EOPNOTSUPP|ENOTSUP|os error 1\b|os error 95\b/.test(text);
        if (!unsupported) throw error;
        this.#linksUnsupported = true;
        logger.warn(
          "This repository's filesystem has no hard links: a backup is published by looking " +
            "first, then renaming, and a worker that lost its lease could still replace a re-run's",
          { repository: this.root },
        );
      }
    }
    if ((await Deno.lstat(final).catch(() => null)) !== null) {
      throw new Deno.errors.AlreadyExists(`${final} exists`);
    }
    await Deno.rename(tmp, final);
  }

  /**
   * Directories this process made or found stay known: a mirror puts thousands of
   * objects into a few dozen directories, and two mkdir calls per object (each a
   * thread hand-off) added up.
   */
  async #ensureDir(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return;
    await Deno.mkdir(dir, { recursive: true });
    if (this.#knownDirs.size > 10_000) this.#knownDirs.clear();
    this.#knownDirs.add(dir);
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const path = this.#path(key);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new CairnError("BACKUP_NOT_FOUND", `Not found in the repository: ${key}`);
      }
      throw repositoryError(error, `reading ${key}`, this.root);
    }
    // Whole reads use Deno's own file stream: its chunks leave a streaming download
    // at +3 MiB of RSS for a GiB, where fresh MiB buffers left +73 MiB to the GC.
    if (!range) return file.readable;
    return await fileChunks(file, {
      start: range.start,
      length: range.end === undefined ? undefined : range.end - range.start + 1,
      chunk: RANGE_CHUNK,
    });
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const info = await Deno.stat(this.#path(key));
      return info.isFile
        ? { key, size: info.size, ...(info.mtime ? { modified_at: info.mtime.getTime() } : {}) }
        : null;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return null;
      }
      throw repositoryError(error, `reading ${key}`, this.root);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the directory the prefix names, then filter by the rest of it.
    const slash = prefix.lastIndexOf("/");
    const dirKey = slash === -1 ? "" : prefix.slice(0, slash);
    const start = dirKey ? this.#path(dirKey) : this.root;
    yield* this.#walk(start, dirKey, prefix);
  }

  async *#walk(dir: string, dirKey: string, prefix: string): AsyncIterable<ObjectInfo> {
    let entries: Deno.DirEntry[];
    try {
      entries = [];
      for await (const e of Deno.readDir(dir)) entries.push(e);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw repositoryError(error, `listing ${dirKey || "/"}`, this.root);
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const e of entries) {
      if (!dirKey && e.name === TMP_DIR) continue;
      const key = dirKey ? `${dirKey}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (key.startsWith(prefix) || prefix.startsWith(key + "/")) {
          yield* this.#walk(join(dir, e.name), key, prefix);
        }
      } else if (e.isFile && key.startsWith(prefix)) {
        const info = await Deno.stat(join(dir, e.name)).catch(() => null);
        if (info) yield { key, size: info.size };
      }
    }
  }

  async remove(key: string): Promise<void> {
    const path = this.#path(key);
    try {
      await Deno.remove(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw repositoryError(error, `deleting ${key}`, this.root);
    }
    syncDirSync(dirname(path));
    await this.#pruneEmptyDirs(dirname(path));
  }

  /** A rename; with `deferred`, its directories are synced by the next #syncDeferred(). */
  async #move(from: string, to: string, deferred: boolean): Promise<void> {
    const source = this.#path(from);
    const target = this.#path(to);
    const rename = async () => {
      await this.#ensureDir(dirname(target));
      await Deno.rename(source, target);
    };
    try {
      await rename().catch(async (error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // The target's directory may have been pruned since this process made it.
        this.#knownDirs.clear();
        await rename();
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new CairnError("BACKUP_NOT_FOUND", `Not found in the repository: ${from}`);
      }
      throw repositoryError(error, `moving ${from} to ${to}`, this.root);
    }
    if (deferred) {
      this.#unsyncedDirs.add(dirname(target));
      this.#unsyncedDirs.add(dirname(source));
    } else {
      syncDirSync(dirname(target));
      syncDirSync(dirname(source));
    }
    await this.#pruneEmptyDirs(dirname(source));
  }

  /**
   * A hard link of `from`'s file, made as a new name under `.tmp/` first: that pins
   * the file, so `check` reads exactly the bytes `to` gets even if `from` is replaced
   * meanwhile, and the rename over `to` is atomic (`to` is never absent). With
   * `deferred`, the new name is synced by the next #syncDeferred().
   */
  async #link(
    from: string,
    to: string,
    check: LinkCheck | undefined,
    deferred: boolean,
  ): Promise<boolean> {
    const source = this.#path(from);
    const target = this.#path(to);
    const tmpDir = join(this.root, TMP_DIR);
    const pin = join(tmpDir, `${ownerTag()}-${crypto.randomUUID()}.part`);
    let linked = false;
    try {
      await this.#ensureDir(tmpDir);
      try {
        await Deno.link(source, pin);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // Either `from` is absent (the usual case: the caller tries names that may
        // hold the bytes), or the tmp directory was removed since it was made.
        if (!(await Deno.lstat(source).then(() => true, () => false))) return false;
        this.#knownDirs.clear();
        await this.#ensureDir(tmpDir);
        await Deno.link(source, pin);
      }
      if (check) {
        const file = await Deno.open(pin, { read: true });
        try {
          if (!(await check(file.readable))) return false;
        } finally {
          try {
            file.close();
          } catch { /* closed by its stream's end */ }
        }
      }
      await this.#ensureDir(dirname(target));
      await Deno.rename(pin, target).catch(async (error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        this.#knownDirs.clear();
        await this.#ensureDir(dirname(target));
        await Deno.rename(pin, target);
      });
      linked = true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      const e = error as Error & { code?: string };
      if (CANNOT_LINK.test(`${e?.message ?? ""} ${e?.code ?? ""}`)) return false;
      throw repositoryError(error, `linking ${to} to ${from}`, this.root);
    } finally {
      if (!linked) await Deno.remove(pin).catch(() => {});
    }
    if (deferred) {
      // The file may itself be a put of this batch: synced through this name too.
      this.#unsyncedFiles.push(target);
      this.#unsyncedDirs.add(dirname(target));
    } else syncDirSync(dirname(target));
    return true;
  }

  /**
   * Removes `dir` and its parents while they are empty, up to the root: a directory
   * left behind would keep its name from a file (a mirrored key), and litters the
   * tree an operator browses. A put racing with this re-makes its directory (put()
   * retries a rename that finds none).
   */
  async #pruneEmptyDirs(dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(this.root + "/")) {
      try {
        await Deno.remove(dir); // not recursive: fails on a directory that holds anything
      } catch {
        return;
      }
      this.#knownDirs.delete(dir);
      this.#unsyncedDirs.delete(dir);
      dir = dirname(dir);
    }
  }

  /**
   * One syncfs for the whole batch: an fsync per file costs a disk cache flush each
   * (5,000 of them in a 5,000-object mirror, about 1 s of system time there), a
   * syncfs one. Where syncfs cannot run, each file and then each directory is
   * fsynced. Calls queue behind each other, so a caller whose puts an earlier call
   * took waits for that call's outcome.
   */
  #syncDeferred(): Promise<void> {
    const run = this.#syncQueue.then(() => this.#syncBatch());
    this.#syncQueue = run.catch(() => {});
    return run;
  }

  async #syncBatch(): Promise<void> {
    // The kernel reports a lost write once: after a failure, no later sync can say
    // which deferred puts reached the disk.
    if (this.#syncFailure) throw this.#syncFailure;
    if (this.#unsyncedFiles.length === 0 && this.#unsyncedDirs.size === 0) return;
    const files = this.#unsyncedFiles;
    const dirs = [...this.#unsyncedDirs];
    this.#unsyncedFiles = [];
    this.#unsyncedDirs.clear();
    try {
      if (await this.#syncFilesystem(this.root)) return;
      let next = 0;
      const lane = async () => {
        while (next < files.length) await syncFile(files[next++]);
      };
      await Promise.all(Array.from({ length: SYNC_LANES }, lane));
      for (const dir of dirs) syncDirSync(dir);
    } catch (error) {
      this.#syncFailure = repositoryError(
        error,
        "syncing mirrored objects (not retried: check the disk, then restart cairn)",
        this.root,
      );
      throw this.#syncFailure;
    }
  }

  /** The `.tmp/` entries, sorted: writes under way, or leftovers of killed writers. */
  async #partialNames(): Promise<string[]> {
    try {
      const names: string[] = [];
      for await (const e of Deno.readDir(join(this.root, TMP_DIR))) names.push(e.name);
      return names.sort().map((name) => `${TMP_DIR}/${name}`);
    } catch {
      return []; // no tmp dir: no leftovers (and a check never fails on this part)
    }
  }

  async #sweepPartial(
    olderThanMs: number,
    writerIsDead: (names: string[]) => Promise<Set<string>> = () => Promise.resolve(new Set()),
  ): Promise<number> {
    let removed = 0;
    const dir = join(this.root, TMP_DIR);
    try {
      const entries = await Array.fromAsync(Deno.readDir(dir));
      const dead = await writerIsDead(entries.map((e) => e.name));
      for (const e of entries) {
        const path = join(dir, e.name);
        const info = await Deno.stat(path).catch(() => null);
        if (
          dead.has(e.name) ||
          (info?.mtime && Date.now() - info.mtime.getTime() > olderThanMs)
        ) {
          await Deno.remove(path).then(() => removed++).catch(() => {});
        }
      }
    } catch { /* no tmp dir: nothing to clean */ }
    return removed;
  }
}

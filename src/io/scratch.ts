import { join, resolve } from "node:path";
import { CairnError } from "../errors.ts";
import { logger } from "../log.ts";
import { deadTags, ownerTag, parseOwnerTag, processIdOf, processStates } from "./process_id.ts";

/** Marks a long-lived child (a scratch redis-server) in a scratch directory: `child-<tag>`. */
const CHILD_MARK = "child-";

/**
 * cairn's one place for scratch files (SQLite snapshot copies, verify copies,
 * PostgreSQL passfiles): `<root>/<pid>-<start>/...`, one subdirectory per process
 * (mode 0700), so that a sweep run by one process (the daemon, or a CLI one-off
 * sharing the root) removes only what dead processes left, never a live one's files.
 */
export class Scratch {
  readonly root: string;
  readonly #own: string;
  #made = false;

  constructor(root: string) {
    this.root = resolve(root);
    this.#own = join(this.root, ownerTag());
  }

  /**
   * Creates the root (0700) if missing and checks it can be written. A root that
   * cannot be made or written is CONFIG_INVALID naming the path and the setting.
   */
  async prepare(): Promise<void> {
    try {
      await Deno.mkdir(this.root, { recursive: true, mode: 0o700 });
      const info = await Deno.stat(this.root);
      if (!info.isDirectory) throw new Error("it is not a directory");
      const probe = join(this.root, `.probe-${ownerTag()}-${crypto.randomUUID()}`);
      await Deno.writeFile(probe, new Uint8Array([1]), { mode: 0o600 });
      await Deno.remove(probe);
    } catch (error) {
      throw new CairnError(
        "CONFIG_INVALID",
        `The scratch directory ${this.root} cannot be created or written (${
          (error as Error).message
        }): fix its permissions or set scratch_dir to a writable directory`,
        { cause: error },
      );
    }
  }

  async #ownDir(): Promise<string> {
    if (!this.#made) {
      await Deno.mkdir(this.root, { recursive: true, mode: 0o700 });
      await Deno.mkdir(this.#own, { recursive: true, mode: 0o700 });
      // mkdir's mode is cut by the umask; the directory must be private whatever it is.
      await Deno.chmod(this.#own, 0o700);
      this.#made = true;
    }
    return this.#own;
  }

  /** A new private directory (0700) for one task; the caller removes it with remove(). */
  async dir(prefix: string): Promise<string> {
    const own = await this.#ownDir();
    return await Deno.makeTempDir({ dir: own, prefix }).catch(async (error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      this.#made = false; // someone removed it under us: make it again, once
      return await Deno.makeTempDir({ dir: await this.#ownDir(), prefix });
    });
  }

  /** The same, synchronously (for a file that must exist before a child is spawned). */
  dirSync(prefix: string): string {
    Deno.mkdirSync(this.#own, { recursive: true, mode: 0o700 });
    Deno.chmodSync(this.#own, 0o700);
    this.#made = true;
    return Deno.makeTempDirSync({ dir: this.#own, prefix });
  }

  /**
   * Removes what dead processes left under the root: every `<pid>-<start>`
   * directory whose process is gone, and probe files of dead processes. Entries of
   * other shapes are left alone (the root may be shared with other software by
   * mistake). Each removal is logged. Returns the paths removed.
   */
  async sweep(): Promise<string[]> {
    const removed: string[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.root));
    } catch {
      return removed;
    }
    const nameOf = (e: Deno.DirEntry) =>
      e.name.startsWith(".probe-") ? e.name.slice(".probe-".length) : e.name;
    const dead = await deadTags(entries.map(nameOf));
    for (const e of entries) {
      const name = nameOf(e);
      const owner = parseOwnerTag(name);
      if (!owner || !dead.has(name)) continue;
      const path = join(this.root, e.name);
      await killOrphans(path);
      try {
        await Deno.remove(path, { recursive: true });
        removed.push(path);
        logger.info("Removed scratch files a dead process left", { path, pid: owner.pid });
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) {
          logger.warn("Could not remove a dead process's scratch files", {
            path,
            error: String(error),
          });
        }
      }
    }
    return removed;
  }
}

/**
 * Records in `dir` (a scratch directory) that the child `pid` works on it, so that
 * should this process die without stopping it, the sweep that removes the directory
 * kills the child first (killOrphans). The mark names the child by pid and start
 * time: a pid reused since is never killed. Returns the mark's path.
 */
export async function markChild(dir: string, pid: number): Promise<string> {
  const path = join(dir, CHILD_MARK + ownerTag(await processIdOf(pid)));
  await Deno.writeFile(path, new Uint8Array(), { mode: 0o600 });
  return path;
}

/** Kills the children marked (markChild) anywhere under `dir` that still run. */
async function killOrphans(dir: string): Promise<void> {
  const marks: string[] = [];
  const walk = async (d: string, depth: number) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isFile && e.name.startsWith(CHILD_MARK)) marks.push(e.name.slice(CHILD_MARK.length));
      else if (e.isDirectory && depth < 3) await walk(join(d, e.name), depth + 1);
    }
  };
  await walk(dir, 0).catch(() => {});
  const ids = marks.map(parseOwnerTag).filter((id) => id !== null);
  if (ids.length === 0) return;
  const states = await processStates(ids);
  ids.forEach((id, i) => {
    if (states[i] !== "alive") return;
    try {
      Deno.kill(id.pid, "SIGKILL");
      logger.info("Killed a child a dead process left running on its scratch files", {
        path: dir,
        pid: id.pid,
      });
    } catch { /* gone meanwhile */ }
  });
}

/** Removes a scratch path; a missing one is fine. */
export async function removeScratch(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

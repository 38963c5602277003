import { basename, dirname, join } from "node:path";
import { CairnError } from "../errors.ts";
import { deadTags, ownerTag } from "../io/process_id.ts";
import { logger } from "../log.ts";

/** Whether a path holds anything: a non-empty directory or a non-empty file. */
export async function isOccupied(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      for await (const _ of Deno.readDir(path)) return true;
      return false;
    }
    return info.size > 0;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

export async function refuseOccupied(path: string, replace: boolean): Promise<void> {
  if (!replace && (await isOccupied(path))) {
    throw new CairnError(
      "TARGET_NOT_EMPTY",
      `Restore target ${path} is not empty: pass --yes on the command line or "replace": true to overwrite it`,
    );
  }
}

/**
 * A scratch name beside `path`, on the same filesystem so that a rename is atomic:
 * `.<name>.cairn-<tag>-<pid>-<start>-<8 hex>`. The owner's `<pid>-<start>` (see
 * ownerTag) lets sweepSiblingTemps tell what a killed process left from what a
 * running one is still writing.
 */
export function siblingTemp(path: string, tag: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.cairn-${tag}-${ownerTag()}-${crypto.randomUUID().slice(0, 8)}`,
  );
}

/** The `<pid>-<start>` owner of a siblingTemp name for `base`, or null for any other name. */
export function siblingTempOwner(base: string, name: string): string | null {
  const prefix = `.${base}.cairn-`;
  if (!name.startsWith(prefix)) return null;
  const m = /-(\d+-(?:\d+|x))-[0-9a-f]{8}$/.exec(name.slice(prefix.length - 1));
  return m ? m[1] : null;
}

/**
 * Removes the siblingTemp entries beside `path` (files or directories) whose owner
 * process is dead on this host: what a restore killed part way left. Entries of a
 * live or unknown owner, and names without an owner, are left alone. Each removal is
 * logged. Returns the paths removed; a missing parent is nothing to sweep.
 */
export async function sweepSiblingTemps(path: string): Promise<string[]> {
  const parent = dirname(path);
  const base = basename(path);
  const found: Array<{ name: string; owner: string }> = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      const owner = siblingTempOwner(base, entry.name);
      if (owner) found.push({ name: entry.name, owner });
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      return [];
    }
    throw error;
  }
  if (found.length === 0) return [];
  const dead = await deadTags(found.map((f) => f.owner));
  const removed: string[] = [];
  for (const { name, owner } of found) {
    if (!dead.has(owner)) continue;
    const leftover = join(parent, name);
    try {
      await Deno.remove(leftover, { recursive: true });
      removed.push(leftover);
      logger.info("Removed what a killed restore left beside its target", {
        path: leftover,
        pid: Number(owner.split("-")[0]),
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return removed;
}

export async function removeQuietly(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

export async function writeStreamToFile(
  stream: ReadableStream<Uint8Array>,
  path: string,
  signal?: AbortSignal,
): Promise<number> {
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  let size = 0;
  try {
    const reader = stream.getReader();
    for (;;) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      let off = 0;
      while (off < value.byteLength) off += await file.write(value.subarray(off));
      size += value.byteLength;
    }
    await file.sync();
  } finally {
    file.close();
  }
  return size;
}

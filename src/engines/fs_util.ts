import { basename, dirname, join } from "node:path";
import { CairnError } from "../errors.ts";

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

/** A scratch name beside `path`, on the same filesystem so that a rename is atomic. */
export function siblingTemp(path: string, tag: string): string {
  return join(dirname(path), `.${basename(path)}.cairn-${tag}-${crypto.randomUUID().slice(0, 8)}`);
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

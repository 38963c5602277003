import type { Config } from "../config/schema.ts";
import { CairnError } from "../errors.ts";

/**
 * Who is using a file store (sqlite, jsonl), told by a lock on `<path>.daemon.lock`:
 * every daemon holds it shared while it runs; `cairn store copy` takes it exclusively,
 * so a copy never reads a store a daemon is changing, and no daemon starts on a store
 * being copied. (A postgres store is told by its nodes' heartbeats instead.)
 */
export interface StoreUseLock {
  release(): void;
}

function lockPath(store: Config["store"]): string {
  return `${store.path}.daemon.lock`;
}

async function open(path: string): Promise<Deno.FsFile> {
  const { dirname } = await import("node:path");
  await Deno.mkdir(dirname(path), { recursive: true });
  return await Deno.open(path, { create: true, read: true, write: true });
}

async function tryLock(file: Deno.FsFile, exclusive: boolean): Promise<boolean> {
  try {
    return await file.tryLock(exclusive);
  } catch {
    return false;
  }
}

/** A daemon's share of the lock; STORE_LOCKED while a store copy holds it. Null for postgres. */
export async function holdForDaemon(store: Config["store"]): Promise<StoreUseLock | null> {
  if (store.kind === "postgres") return null;
  const path = lockPath(store);
  const file = await open(path);
  if (!(await tryLock(file, false))) {
    file.close();
    throw new CairnError(
      "STORE_LOCKED",
      `The job store ${store.path} is being copied (cairn store copy holds ${path}); start the daemon when the copy has finished`,
    );
  }
  return { release: () => file.close() };
}

/** The copy's exclusive lock; STORE_LOCKED naming the reason while a daemon runs on the store. */
export async function holdForCopy(store: Config["store"]): Promise<StoreUseLock | null> {
  if (store.kind === "postgres") return null;
  const path = lockPath(store);
  const file = await open(path);
  if (!(await tryLock(file, true))) {
    file.close();
    throw new CairnError(
      "STORE_LOCKED",
      `A cairn daemon is running on the job store ${store.path} (it holds ${path}): stop it before copying the store`,
    );
  }
  return { release: () => file.close() };
}

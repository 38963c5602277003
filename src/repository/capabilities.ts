/**
 * What callers use beyond the five storage verbs, each written once: the backend's
 * capability where it has one (repository.ts, RepositoryCapabilities), else a
 * generic fallback made of the verbs. A caller never asks which backend it has.
 */
import { CairnError } from "../errors.ts";
import type { LinkCheck, PartialWrites, PutOptions, PutResult, Repository } from "./repository.ts";

/**
 * Gives the object at `from` the key `to`, replacing what `to` held. Through the
 * backend's `move` (a rename, a server-side copy) where it has one; else copied
 * through cairn (get, put, remove: `to` is whole before `from` goes). BACKUP_NOT_FOUND
 * when `from` does not exist. A move onto itself changes nothing.
 */
export async function moveObject(repo: Repository, from: string, to: string): Promise<void> {
  if (from === to) {
    // A copy onto itself then a remove would lose the object (and S3 refuses the copy).
    if (await repo.stat(from)) return;
    throw new CairnError("BACKUP_NOT_FOUND", `Not found in the repository: ${from}`);
  }
  if (repo.capabilities.move) return await repo.capabilities.move(from, to);
  await repo.put(to, await repo.get(from));
  await repo.remove(from);
}

/**
 * A put that is one of many small ones: durable only once syncBatch() has returned
 * where the backend batches syncs (record nothing that depends on it before that);
 * elsewhere a plain put, durable when it returns.
 */
export function putBatched(
  repo: Repository,
  key: string,
  body: ReadableStream<Uint8Array>,
  options?: PutOptions,
): Promise<PutResult> {
  return (repo.capabilities.batch ?? repo).put(key, body, options);
}

/** moveObject() as one of a batch: durable only once syncBatch() has returned. */
export function moveBatched(repo: Repository, from: string, to: string): Promise<void> {
  const batch = repo.capabilities.batch;
  return batch ? batch.move(from, to) : moveObject(repo, from, to);
}

/**
 * Makes every earlier putBatched() and moveBatched() durable; resolves at once where
 * puts are durable on their own. Once a batch sync failed, every later one fails.
 */
export function syncBatch(repo: Repository): Promise<void> {
  return repo.capabilities.batch?.sync() ?? Promise.resolve();
}

const NO_PARTIAL_WRITES: PartialWrites = {
  list: () => Promise.resolve([]),
  sweep: () => Promise.resolve(0),
};

/**
 * Leftovers of interrupted writes, to report and to sweep; a backend whose failed
 * writes leave nothing behind has none.
 */
export function partialWrites(repo: Repository): PartialWrites {
  return repo.capabilities.partialWrites ?? NO_PARTIAL_WRITES;
}

/** Whether linkBatched() can ever link in this repository (the link capability). */
export function canLink(repo: Repository): boolean {
  return repo.capabilities.link !== undefined;
}

/**
 * The link capability as one of a batch (durable only once syncBatch() has returned),
 * or plain where the backend has no batch. Resolves false where the repository has
 * no links at all: there is no generic fallback, the caller keeps its own copy.
 */
export function linkBatched(
  repo: Repository,
  from: string,
  to: string,
  check?: LinkCheck,
): Promise<boolean> {
  const link = repo.capabilities.batch?.link ?? repo.capabilities.link;
  return link ? link(from, to, check) : Promise.resolve(false);
}

/** The error of a no-overwrite put whose key was taken; the caller looks at what holds it. */
export function objectExists(key: string): CairnError {
  return new CairnError(
    "OBJECT_EXISTS",
    `Not written: ${key} already exists in the repository, and this write never replaces an object`,
  );
}

/** Whether `error` is a no-overwrite put refused because its key exists. */
export function isObjectExists(error: unknown): boolean {
  return error instanceof CairnError && error.code === "OBJECT_EXISTS";
}

/**
 * Stores `body` under `key` only if nothing is there: OBJECT_EXISTS otherwise, with
 * the existing object untouched (what a publish by a worker that may have lost its
 * lease needs: README, Guarantees). Through the backend's atomic `putIfAbsent` where
 * it claims one. The fallback looks first, then puts: a writer that publishes the
 * same key between the stat and the end of the put is replaced (the race the
 * capability closes), so only a backend without any conditional write gets it.
 */
export async function putIfAbsent(
  repo: Repository,
  key: string,
  body: ReadableStream<Uint8Array>,
  options?: PutOptions,
): Promise<PutResult> {
  if (repo.capabilities.putIfAbsent) return await repo.capabilities.putIfAbsent(key, body, options);
  return await putIfAbsentByStat(repo, key, body, options);
}

/**
 * putIfAbsent()'s fallback, for a backend that cannot refuse an existing key itself:
 * a stat, then a plain put. Not atomic: a writer that publishes `key` after the stat
 * and before this put ends is replaced.
 */
export async function putIfAbsentByStat(
  repo: Repository,
  key: string,
  body: ReadableStream<Uint8Array>,
  options?: PutOptions,
): Promise<PutResult> {
  if (await repo.stat(key)) {
    body.cancel().catch(() => {});
    throw objectExists(key);
  }
  return await repo.put(key, body, options);
}

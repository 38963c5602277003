import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import type { Repository } from "../../repository/repository.ts";
import { readState } from "./listing.ts";
import { parseListing } from "./listing.ts";

/**
 * The version store of a mirror: every copy a run displaced (an object that changed,
 * or was removed with `remove: true`) is kept here under its sha256, once whatever
 * key or run refers to it.
 *
 * - fs repository: `mirrors/<client>/%versions/<first 2 hex>/<sha256>`. A name of the
 *   shape `%` + non-hex never comes from a key (object_names.ts), so no object can
 *   collide with it. Copying `mirrors/<client>/` elsewhere without cairn: skip
 *   `%versions/` (`--exclude '%versions/*'`).
 * - S3 repository: `mirrors-versions/<client>/<first 2 hex>/<sha256>`, beside
 *   `mirrors-escaped/` (object keys are stored as they are under `mirrors/<client>/`,
 *   so any name there could be an object's): `aws s3 sync` or `mc mirror` of
 *   `mirrors/<client>/` gives exactly the newest state.
 *
 * The two-hex fan-out keeps directories small (git's object store does the same).
 */
export function versionPrefix(kind: "fs" | "s3", client: string): string {
  return kind === "fs" ? `mirrors/${client}/%versions/` : `mirrors-versions/${client}/`;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** The repository key of the kept version with this sha256 (lower-case hex). */
export function versionKey(kind: "fs" | "s3", client: string, sha256: string): string {
  if (!SHA256.test(sha256)) {
    throw new CairnError("VERIFY_FAILED", `Not a sha256 in a mirror listing: ${sha256}`);
  }
  return `${versionPrefix(kind, client)}${sha256.slice(0, 2)}/${sha256}`;
}

/** The sha256 a version key names, or null for anything else under the prefix. */
export function versionSha(kind: "fs" | "s3", client: string, key: string): string | null {
  const prefix = versionPrefix(kind, client);
  if (!key.startsWith(prefix)) return null;
  const m = /^([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key.slice(prefix.length));
  return m && m[2].startsWith(m[1]) ? m[2] : null;
}

/** A run's listing key (the mirror's artifact), not its manifest. */
export function isListingKey(key: string): boolean {
  return key.endsWith(".mirror.json");
}

/**
 * Every sha256 a mirror still needs a kept version of: those listed by each run of
 * the client in the repository (with or without a manifest: a run being written, or
 * one whose delete stopped half way, counts), minus the runs in `without`, plus the
 * running state's (an object whose copy failed after its old copy was displaced is
 * listed by the next run with its old sha256). A listing that cannot be read fails
 * the whole call: nothing may be collected on a partial view.
 */
export async function referencedVersions(
  repo: Repository,
  client: string,
  without: ReadonlySet<string> = new Set(),
): Promise<{ shas: Set<string>; runs: number }> {
  const shas = new Set<string>();
  let runs = 0;
  for await (const obj of repo.list(`backups/${client}/`)) {
    if (!isListingKey(obj.key) || without.has(obj.key)) continue;
    const listing = await parseListing(await repo.get(obj.key), obj.key);
    for (const o of listing.objects) shas.add(o.sha256);
    runs++;
  }
  for (const entry of (await readState(repo, client)).values()) shas.add(entry.sha256);
  return { shas, runs };
}

export interface VersionGc {
  /** Kept versions no remaining run refers to (removed, or that would be). */
  versions: number;
  bytes: number;
}

/**
 * What collecting the client's version store would free once the runs in `without`
 * are gone (the dry-run plan), without removing anything.
 */
export async function planVersionGc(
  repo: Repository,
  client: string,
  without: ReadonlySet<string>,
): Promise<VersionGc> {
  const { shas } = await referencedVersions(repo, client, without);
  let versions = 0, bytes = 0;
  for await (const obj of repo.list(versionPrefix(repo.kind, client))) {
    const sha = versionSha(repo.kind, client, obj.key);
    if (sha && !shas.has(sha)) {
      versions++;
      bytes += obj.size;
    }
  }
  return { versions, bytes };
}

/**
 * Removes the kept versions that no run of the client refers to.
 *
 * Safe to kill at any point: the candidates are listed first, the references read
 * after (so a version displaced meanwhile is no candidate, and one a run made before
 * is referenced by its state or a listing), and each removal is of one unreferenced
 * object. A kill leaves some unreferenced versions, which the next collection frees.
 */
export async function collectVersions(
  repo: Repository,
  client: string,
  signal?: AbortSignal,
): Promise<VersionGc> {
  const candidates: Array<{ key: string; sha: string; size: number }> = [];
  for await (const obj of repo.list(versionPrefix(repo.kind, client))) {
    const sha = versionSha(repo.kind, client, obj.key);
    if (sha) candidates.push({ key: obj.key, sha, size: obj.size });
  }
  if (!candidates.length) return { versions: 0, bytes: 0 };
  const { shas } = await referencedVersions(repo, client);
  let versions = 0, bytes = 0;
  for (const c of candidates) {
    if (shas.has(c.sha)) continue;
    signal?.throwIfAborted();
    await repo.remove(c.key);
    versions++;
    bytes += c.size;
  }
  if (versions) {
    logger.info("Collected mirror versions no run refers to", { client, versions, bytes });
  }
  return { versions, bytes };
}

import { z } from "zod";
import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { readArtifact } from "../../pipeline/read.ts";
import { isMirrorListingKey, mirrorRefsKey } from "../../repository/keys.ts";
import type { Repository } from "../../repository/repository.ts";
import { isObjectExists, putIfAbsent } from "../../repository/capabilities.ts";
import { parseListing, readState } from "./listing.ts";
import { forgetVersionHints } from "./dedup.ts";

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

/** A run's listing key (the mirror's artifact, any chained extension), not its manifest. */
export const isListingKey = isMirrorListingKey;

/**
 * A run's reference list (repository key from mirrorRefsKey): the plain sha256 of
 * every object its listing names, sorted, once each. Written by the run before its
 * listing, never encrypted: version collection and the repository check read it on a
 * host with no identity. It tells a reader of the repository no more than the
 * version store's names (the same sha256s) and the running state already do: which
 * contents are equal, and whether a file the reader already has is among them; never
 * any content (see README, "Encryption").
 */
const RefsSchema = z.object({
  format_version: z.literal(1),
  listing: z.string(),
  sha256: z.array(z.string().regex(SHA256)),
});

/**
 * Writes the reference list of the run whose listing will be stored at `listingKey`,
 * without overwrite: a run that lost its lease must not replace the list of the
 * attempt that took its job over (README, Guarantees). OBJECT_EXISTS when another
 * list is there (an identical one is accepted); the job's next attempt removes an
 * unlisted one at its start.
 */
export async function writeRefs(
  repo: Repository,
  listingKey: string,
  shas: Iterable<string>,
): Promise<void> {
  const sha256 = [...new Set(shas)].sort();
  const body = JSON.stringify({ format_version: 1, listing: listingKey, sha256 });
  try {
    await putIfAbsent(
      repo,
      mirrorRefsKey(listingKey),
      ReadableStream.from([new TextEncoder().encode(body)]),
    );
  } catch (error) {
    if (!isObjectExists(error)) throw error;
    const there = await readRefs(repo, listingKey).catch(() => null);
    if (there?.join(",") !== sha256.join(",")) throw error;
  }
}

/** The run's reference list, or null when it has none (listings before cairn wrote them). */
export async function readRefs(repo: Repository, listingKey: string): Promise<string[] | null> {
  const key = mirrorRefsKey(listingKey);
  if (!(await repo.stat(key))) return null;
  let value: unknown;
  try {
    value = JSON.parse(await new Response(await repo.get(key)).text());
  } catch {
    value = null;
  }
  const parsed = RefsSchema.safeParse(value);
  if (!parsed.success || parsed.data.listing !== listingKey) {
    throw new CairnError(
      "VERIFY_FAILED",
      `The reference list ${key} of ${listingKey} is malformed; remove it and version collection reads the listing instead (which needs the age identity when the listing is encrypted)`,
    );
  }
  return parsed.data.sha256;
}

/**
 * This host's age identities, loaded only when a listing must be read (a run without a
 * reference list): a write-only host, or one whose identity file cannot be read, still
 * collects every run that has one.
 */
export type IdentitySource = () => Promise<string[]>;

const NO_IDENTITIES: IdentitySource = () => Promise.resolve([]);

/**
 * The sha256s a run's listing names: from its reference list, else its listing (a run
 * from before reference lists, or one whose list was removed), decrypted with this
 * host's identities when it is encrypted.
 */
async function runReferences(
  repo: Repository,
  listingKey: string,
  identities: IdentitySource,
): Promise<string[]> {
  const refs = await readRefs(repo, listingKey);
  if (refs) return refs;
  const listing = await parseListing(
    await readArtifact(repo, listingKey, {
      identities: await identities(),
      signal: new AbortController().signal,
    }),
    listingKey,
  );
  return listing.objects.map((o) => o.sha256);
}

/**
 * Every sha256 a mirror still needs a kept version of: those listed by each run of
 * the client in the repository (with or without a manifest: a run being written, or
 * one whose delete stopped half way, counts), minus the runs in `without`, plus the
 * running state's (an object whose copy failed after its old copy was displaced is
 * listed by the next run with its old sha256). Each run's come from its reference
 * list, so no identity is needed; a run without one (an older run, or one whose list
 * was removed) has its listing read through the pipeline with `identities`. A run that cannot be read fails the whole call: nothing may
 * be collected on a partial view.
 */
export async function referencedVersions(
  repo: Repository,
  client: string,
  without: ReadonlySet<string> = new Set(),
  identities: IdentitySource = NO_IDENTITIES,
): Promise<{ shas: Set<string>; runs: number }> {
  const shas = new Set<string>();
  let runs = 0;
  for await (const obj of repo.list(`backups/${client}/`)) {
    if (!isListingKey(obj.key) || without.has(obj.key)) continue;
    for (const sha of await runReferences(repo, obj.key, identities)) shas.add(sha);
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
  identities: IdentitySource = NO_IDENTITIES,
): Promise<VersionGc> {
  const { shas } = await referencedVersions(repo, client, without, identities);
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
 * The removed versions' hints (dedup.ts) go after them: a hint left behind is only
 * a few bytes, checked before any use.
 */
export async function collectVersions(
  repo: Repository,
  client: string,
  signal?: AbortSignal,
  identities: IdentitySource = NO_IDENTITIES,
): Promise<VersionGc> {
  const candidates: Array<{ key: string; sha: string; size: number }> = [];
  for await (const obj of repo.list(versionPrefix(repo.kind, client))) {
    const sha = versionSha(repo.kind, client, obj.key);
    if (sha) candidates.push({ key: obj.key, sha, size: obj.size });
  }
  if (!candidates.length) return { versions: 0, bytes: 0 };
  const { shas } = await referencedVersions(repo, client, new Set(), identities);
  let versions = 0, bytes = 0;
  const removed: string[] = [];
  for (const c of candidates) {
    if (shas.has(c.sha)) continue;
    signal?.throwIfAborted();
    await repo.remove(c.key);
    removed.push(c.sha);
    versions++;
    bytes += c.size;
  }
  if (versions) {
    logger.info("Collected mirror versions no run refers to", { client, versions, bytes });
    await forgetVersionHints(repo, client, new Set(removed)).catch((e) =>
      logger.warn("Could not drop the collected versions' hints", { client, error: String(e) })
    );
  }
  return { versions, bytes };
}

/**
 * The kept versions of `client` that no run (nor the running state) refers to, for
 * the repository check: what the next prune's collection would free. Reads a
 * listing (with `identities`) only for a run without a reference list.
 */
export async function orphanedVersions(
  repo: Repository,
  client: string,
  identities: IdentitySource = NO_IDENTITIES,
): Promise<Array<{ key: string; size: number }>> {
  const versions: Array<{ key: string; sha: string; size: number }> = [];
  for await (const obj of repo.list(versionPrefix(repo.kind, client))) {
    const sha = versionSha(repo.kind, client, obj.key);
    if (sha) versions.push({ key: obj.key, sha, size: obj.size });
  }
  if (!versions.length) return [];
  const { shas } = await referencedVersions(repo, client, new Set(), identities);
  return versions.filter((v) => !shas.has(v.sha)).map(({ key, size }) => ({ key, size }));
}

/**
 * What a backup attempt does when a no-overwrite publish under its key is refused
 * (repository putIfAbsent: OBJECT_EXISTS). A publish never replaces an object, so a
 * worker frozen past its lease (SIGSTOP, a GC pause, a suspended VM) that resumes
 * with a write in flight cannot replace the artifact or the manifest of the attempt
 * that took its job over. The rules (README, Guarantees):
 *
 * - The artifact was refused: the key holds another attempt's bytes. Its manifest
 *   naming this job means that attempt finished the job: this attempt's bytes are
 *   already gone (the put removed its own part), and it ends with the listed backup as
 *   its result, which the store accepts only while this attempt holds the lease. No
 *   manifest means another attempt published and has not listed it yet (or never
 *   will): nothing is replaced or removed, and the attempt fails to be retried; the
 *   next attempt removes a bare artifact at its start.
 * - The manifest was refused after this attempt's own artifact was published:
 *   another attempt of this job listed a backup. Same bytes (sha256 and size): it is
 *   this backup. Other bytes: whoever holds the lease decides. An attempt that lost
 *   it stops and touches nothing. One that still holds it could publish its artifact
 *   only because the key was empty then, so the bytes the listed manifest names are
 *   gone (its own start removed them as a bare artifact, typically, before the other
 *   attempt, frozen after its last lease check, listed them): that manifest is
 *   replaced with this attempt's (removed, then published again without overwrite).
 * - A manifest of another job: the key was never this job's (the store refuses a key
 *   another job holds): OBJECT_EXISTS, and nothing is touched.
 */
import { CairnError } from "../errors.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { manifestKey } from "../repository/keys.ts";
import { type Manifest, readManifest, writeManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { isObjectExists } from "../repository/capabilities.ts";
import { resultFromManifest } from "./recover.ts";

/** The manifest at `key`, or null when there is none (or it went meanwhile). */
async function manifestAt(repo: Repository, key: string): Promise<Manifest | null> {
  if (!(await repo.stat(manifestKey(key)))) return null;
  try {
    return await readManifest(repo, key);
  } catch (error) {
    if (error instanceof CairnError && error.code === "BACKUP_NOT_FOUND") return null;
    throw error;
  }
}

function notOurs(key: string, manifest: Manifest): CairnError {
  return new CairnError(
    "OBJECT_EXISTS",
    `The key ${key} holds a backup of job ${manifest.job_id ?? "(none)"}, not of this job: ` +
      "nothing was written or removed",
  );
}

/**
 * The artifact's no-overwrite publish was refused: the job's result when another
 * attempt of this job has listed its backup there; else throws (nothing replaced).
 */
export async function artifactRefused(
  repo: Repository,
  key: string,
  job: Job,
): Promise<Record<string, unknown>> {
  const manifest = await manifestAt(repo, key);
  if (manifest === null) {
    throw new CairnError(
      "OBJECT_EXISTS",
      `Another attempt of job ${job.id} stored ${key} after this attempt started, and has ` +
        "not listed it: nothing was replaced; the next attempt removes it if it is still unlisted",
    );
  }
  if (manifest.job_id !== job.id) throw notOurs(key, manifest);
  logger.warn(
    "Another attempt of this job stored and listed its backup first; this attempt's bytes were discarded",
    { job_id: job.id, attempt: job.attempts, key },
  );
  return resultFromManifest(manifest);
}

/**
 * Publishes the manifest without overwrite, after this attempt's own artifact was
 * published under its key. Returns the job's result from a backup already listed
 * there when that one stands (see the module's rules), else null (this attempt's
 * manifest is the one listed).
 */
export async function publishManifest(
  repo: Repository,
  manifest: Manifest,
  job: Job,
  confirmLease: () => Promise<void>,
): Promise<Record<string, unknown> | null> {
  try {
    await writeManifest(repo, manifest, { ifAbsent: true });
    return null;
  } catch (error) {
    if (!isObjectExists(error)) throw error;
  }
  const listed = await manifestAt(repo, manifest.key);
  if (listed === null) {
    // Removed between the refusal and the read (a delete): publish once more, still
    // without overwrite.
    await writeManifest(repo, manifest, { ifAbsent: true });
    return null;
  }
  if (listed.job_id !== job.id) throw notOurs(manifest.key, listed);
  if (listed.sha256 === manifest.sha256 && listed.size_bytes === manifest.size_bytes) {
    return resultFromManifest(listed);
  }
  // LeaseLostError when another attempt owns the job: it stops here, touching nothing.
  await confirmLease();
  logger.warn(
    "A fenced-out attempt of this job listed bytes that are no longer stored; its manifest is replaced",
    { job_id: job.id, attempt: job.attempts, key: manifest.key, listed_sha256: listed.sha256 },
  );
  await repo.remove(manifestKey(manifest.key));
  await writeManifest(repo, manifest, { ifAbsent: true });
  return null;
}

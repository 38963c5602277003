import { resolve } from "node:path";
import { recoverInterrupted } from "../engines/directory/interrupted.ts";
import { sweepSiblingTemps } from "../engines/fs_util.ts";
import { engineFor } from "../engines/registry.ts";
import { CairnError, toError } from "../errors.ts";
import { deadTags, parseOwner, processStates } from "../io/process_id.ts";
import * as state from "../jobs/state.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import {
  artifactKeyOf,
  isManifestKey,
  isMirrorListingKey,
  keyProblem,
  manifestKey,
  mirrorRefsKey,
} from "../repository/keys.ts";
import { type Manifest, readManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { partialWrites } from "../repository/capabilities.ts";
import { LeaseLostError } from "../store/store.ts";
import { nodeClients } from "./node.ts";
import { leaseMs, type Services } from "./services.ts";

/**
 * What a backup job's fixed key holds in the repository:
 * - "complete": the manifest exists and names this job (the backup exists);
 * - "partial": an artifact without a manifest (a write the job never finished);
 * - "foreign": a manifest of another job (the key is not this job's to use);
 * - "absent": nothing.
 */
export type KeyState =
  | { state: "complete"; manifest: Manifest }
  | { state: "partial" }
  | { state: "foreign"; manifest: Manifest }
  | { state: "absent" };

export async function keyState(repo: Repository, key: string, jobId: number): Promise<KeyState> {
  if (await repo.stat(manifestKey(key))) {
    try {
      const manifest = await readManifest(repo, key);
      return manifest.job_id === jobId
        ? { state: "complete", manifest }
        : { state: "foreign", manifest };
    } catch (error) {
      // Removed between the stat and the read: as if it never was.
      if (!(error instanceof CairnError && error.code === "BACKUP_NOT_FOUND")) throw error;
    }
  }
  return (await repo.stat(key)) ? { state: "partial" } : { state: "absent" };
}

/** A backup job's result rebuilt from its manifest (a re-run that found its own backup). */
export function resultFromManifest(manifest: Manifest): Record<string, unknown> {
  return {
    key: manifest.key,
    size_bytes: manifest.size_bytes,
    sha256: manifest.sha256,
    recovered: true,
  };
}

/** Removes an artifact that has no manifest; logged, since it is the trace of a crash. */
export async function removeOrphan(repo: Repository, key: string, why: string): Promise<void> {
  await repo.remove(key);
  // A mirror run writes its reference list before its listing (s3mirror/versions.ts).
  if (isMirrorListingKey(key)) await repo.remove(mirrorRefsKey(key));
  logger.warn("Removed an artifact without a manifest", { key, reason: why });
}

/** Of the lease owners given, those that are processes on this host known to be gone. */
export async function deadOwners(owners: Iterable<string | null>): Promise<Set<string>> {
  const parsed = [...new Set(owners)].flatMap((o) => {
    const id = parseOwner(o);
    return id ? [{ owner: o!, id }] : [];
  });
  const states = await processStates(parsed.map((p) => p.id));
  return new Set(parsed.filter((_, i) => states[i] === "dead").map((p) => p.owner));
}

/**
 * Takes back at once the jobs whose lease owner was a process on this host that is
 * gone (killed, crashed): their leases end now instead of after the TTL.
 */
export async function reclaimFromDeadOwners(services: Services): Promise<Job[]> {
  const { jobs: running } = await services.store.list({ status: "running" }, { limit: 1000 });
  const dead = await deadOwners(running.map((j) => j.lease_owner));
  if (dead.size === 0) return [];
  const jobs = await services.store.expireLeasesOf((owner) => dead.has(owner));
  for (const job of jobs) {
    logger.warn("Took back a job whose worker process is gone", {
      job_id: job.id,
      kind: job.kind,
      attempt: job.attempts,
      previous_owner: job.lease_owner,
    });
  }
  return jobs;
}

/**
 * Settles abandoned backup jobs that no worker will claim again (no attempt left,
 * or cancel requested) from what their key holds: completed when their own
 * manifest exists, else failed or cancelled, after their partial artifact is removed.
 */
export async function settleAbandonedBackups(services: Services): Promise<Job[]> {
  const now = Date.now();
  const { jobs } = await services.store.list({ status: "running", kind: "backup" }, {
    limit: 1000,
  });
  const settled: Job[] = [];
  for (const job of jobs) {
    if (!state.isLeaseExpired(job, now) || !state.needsRepositoryToSettle(job)) continue;
    if (job.attempts < job.max_attempts && !job.cancel_requested) continue; // claimable
    try {
      const found = await keyState(services.repository, job.key!, job.id);
      if (found.state === "partial") {
        await removeOrphan(services.repository, job.key!, `job ${job.id} was abandoned`);
      }
      const out = await services.store.settleAbandoned(
        job.id,
        job.lease_token!,
        found.state === "complete" ? { result: resultFromManifest(found.manifest) } : {
          error:
            `Worker lost its lease on attempt ${job.attempts} of ${job.max_attempts} (process killed or stalled)`,
        },
      );
      logger.info("Settled an abandoned backup from the repository", {
        job_id: job.id,
        status: out.status,
        key: job.key,
      });
      settled.push(out);
    } catch (error) {
      if (error instanceof LeaseLostError) continue; // someone else settled it
      logger.error("Could not settle an abandoned backup", {
        job_id: job.id,
        error: toError(error).message,
      });
    }
  }
  return settled;
}

/**
 * Removes artifacts without a manifest that no running job can explain: the key is
 * not held by a job running under a live lease, and either a job holds the key but
 * is not running any more (or its worker is gone), or no job holds it and it is
 * older than a lease TTL. Each removal is logged. Returns the keys removed.
 */
export async function sweepOrphanArtifacts(services: Services): Promise<string[]> {
  const repo = services.repository;
  const artifacts: string[] = [];
  const manifests = new Set<string>();
  for await (const obj of repo.list("backups/")) {
    if (isManifestKey(obj.key)) manifests.add(artifactKeyOf(obj.key));
    else if (keyProblem(obj.key) === null) artifacts.push(obj.key);
  }
  const candidates = artifacts.filter((k) => !manifests.has(k));
  const removed: string[] = [];
  const ttl = leaseMs(services.config);
  // Read the jobs after listing: a key is fixed on its job before its artifact is written.
  for (const key of candidates) {
    const now = Date.now();
    const { jobs } = await services.store.list({ key, kind: "backup" }, { limit: 10 });
    const dead = await deadOwners(jobs.map((j) => j.lease_owner));
    const live = jobs.some((j) =>
      j.status === "running" && !state.isLeaseExpired(j, now) &&
      !(j.lease_owner !== null && dead.has(j.lease_owner))
    );
    if (live) continue;
    if (jobs.length === 0) {
      const info = await repo.stat(key);
      const age = info?.modified_at !== undefined ? now - info.modified_at : Infinity;
      if (age <= ttl) continue;
    }
    // Looked at again right before removal: a job may have finished since the listing.
    if (await repo.stat(manifestKey(key))) continue;
    try {
      await removeOrphan(
        repo,
        key,
        jobs.length === 0
          ? "no job holds its key"
          : jobs[0].status === "running"
          ? `the worker of job ${jobs[0].id} is gone`
          : `job ${jobs[0].id} is ${jobs[0].status}`,
      );
      removed.push(key);
    } catch (error) {
      logger.warn("Could not remove an artifact without a manifest", {
        key,
        error: toError(error).message,
      });
    }
  }
  return removed;
}

export interface SweepReport {
  reclaimed: number;
  settled: number;
  orphans: string[];
  scratch: string[];
  partial_writes: number;
  /** Databases of killed restores dropped (each logged where it was dropped). */
  restore_leftovers: string[];
}

/**
 * Everything that cleans up after crashes, in order: leases of dead owners ended,
 * abandoned backups settled, orphan artifacts removed, dead processes' scratch
 * files and `.tmp/` writes removed. Runs at start-up and then periodically.
 */
export async function sweep(services: Services): Promise<SweepReport> {
  const reclaimed = await reclaimFromDeadOwners(services);
  const settled = await settleAbandonedBackups(services);
  const orphans = await sweepOrphanArtifacts(services).catch((error) => {
    logger.error("The orphan sweep failed", { error: toError(error).message });
    return [] as string[];
  });
  const scratch = await services.scratch.sweep();
  const partial = await partialWrites(services.repository)
    .sweep(leaseMs(services.config), deadTags)
    .catch(() => 0);
  if (partial) logger.info("Removed leftovers of interrupted writes", { files: partial });
  // Restores of a client's own path killed part way: what they left beside it is
  // removed (a restore elsewhere is swept by the next restore to that path).
  for (const client of Object.values(services.config.clients)) {
    if (client.kind !== "directory" && client.kind !== "sqlite") continue;
    await sweepSiblingTemps(resolve(client.path)).catch((error) =>
      logger.error("What a killed restore left could not be removed", {
        path: client.path,
        error: toError(error).message,
      })
    );
  }
  // In-place restores of directory clients killed part way: rolled back (logged there).
  for (const client of Object.values(services.config.clients)) {
    if (client.kind !== "directory") continue;
    await recoverInterrupted(resolve(client.path)).catch((error) =>
      logger.error("An interrupted restore could not be rolled back", {
        path: client.path,
        error: toError(error).message,
      })
    );
  }
  const leftovers = await sweepRestoreLeftovers(services);
  return {
    reclaimed: reclaimed.length,
    settled: settled.length,
    orphans,
    scratch,
    partial_writes: partial,
    restore_leftovers: leftovers,
  };
}

/**
 * What killed restores left on the servers of the clients this node runs (a postgres
 * restore's fresh `<db>_cairn_new_<id>` database, engines/postgres/leftovers.ts), where
 * the restoring process is provably gone. Only postgres clients have such leftovers, so
 * no other engine is loaded for it. One server's failure is logged; the others still go.
 */
export async function sweepRestoreLeftovers(services: Services): Promise<string[]> {
  const removed: string[] = [];
  for (const name of nodeClients(services.config)) {
    const client = Object.hasOwn(services.config.clients, name)
      ? services.config.clients[name]
      : undefined;
    if (client?.kind !== "postgres") continue;
    try {
      const engine = await engineFor(client, name);
      removed.push(...(await engine.sweepLeftovers?.(client) ?? []));
    } catch (error) {
      logger.error("Could not sweep what killed restores left", {
        client: name,
        error: toError(error).message,
      });
    }
  }
  return removed;
}

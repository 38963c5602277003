import { plural } from "../plural.ts";
import type { Job, Schedule } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { parseKey } from "../repository/keys.ts";
import { deleteBackup, listBackupKeys, readManifest } from "../repository/manifest.ts";
import { applyPolicy, type Decision, hasAnyRule } from "../retention/policy.ts";
import type { Services } from "./services.ts";
import {
  collectVersions,
  type IdentitySource,
  isListingKey,
  planVersionGc,
} from "../engines/s3mirror/versions.ts";
import { loadKeys } from "../pipeline/identity.ts";

/** This host's identities, read when a run without a reference list needs them. */
function hostIdentities(services: Services): IdentitySource {
  return async () => (await loadKeys(services.config.repository.encryption)).identities;
}

/**
 * For an s3 mirror client: the runs retention removes, and the kept versions
 * (engines/s3mirror/versions.ts) that no remaining run refers to, freed by the
 * garbage collection that follows (or that would be, in a dry run).
 */
export interface MirrorGc {
  client_name: string;
  runs: string[];
  versions: number;
  bytes: number;
}

/** The s3 mirror clients a prune in this scope collects versions for. */
function mirrorClients(services: Services, scope: { client_name?: string | null }): string[] {
  return Object.entries(services.config.clients)
    .filter(([name, c]) => c.kind === "s3" && (!scope.client_name || scope.client_name === name))
    .map(([name]) => name);
}

/** What removing the planned runs would free in each mirror client's version store. */
export async function planMirrorGc(
  services: Services,
  scope: { client_name?: string | null },
  plans: SchedulePlan[],
): Promise<MirrorGc[]> {
  const out: MirrorGc[] = [];
  for (const client of mirrorClients(services, scope)) {
    const runs = plans.filter((p) => p.client_name === client)
      .flatMap((p) => p.remove.map((d) => d.key)).filter(isListingKey);
    const gc = await planVersionGc(
      services.repository,
      client,
      new Set(runs),
      hostIdentities(services),
    );
    out.push({ client_name: client, runs, ...gc });
  }
  return out;
}

export interface SchedulePlan {
  schedule_id: number;
  client_name: string;
  timezone: string;
  keep: Decision[];
  remove: Decision[];
}

/**
 * What retention would keep and remove for each schedule in scope. Only backups
 * made by a schedule are ever considered for it; manual backups are never pruned.
 */
export async function planPrune(
  services: Services,
  scope: { client_name?: string | null; schedule_id?: number | null },
  signal?: AbortSignal,
): Promise<SchedulePlan[]> {
  let schedules: Schedule[] = await services.store.listSchedules();
  if (scope.schedule_id != null) schedules = schedules.filter((s) => s.id === scope.schedule_id);
  if (scope.client_name) schedules = schedules.filter((s) => s.client_name === scope.client_name);
  const plans: SchedulePlan[] = [];
  const byClient = new Map<string, Array<{ key: string; schedule_id: number | null }>>();
  const verifiedByClient = new Map<string, Set<string>>();
  for (const schedule of schedules) {
    if (!hasAnyRule(schedule.retention)) continue;
    let backups = byClient.get(schedule.client_name);
    if (!backups) {
      backups = [];
      for (const key of await listBackupKeys(services.repository, schedule.client_name)) {
        signal?.throwIfAborted();
        const m = await readManifest(services.repository, key).catch(() => null);
        if (m) backups.push({ key, schedule_id: m.schedule_id });
      }
      byClient.set(schedule.client_name, backups);
    }
    let verified = verifiedByClient.get(schedule.client_name);
    if (!verified) {
      verified = await verifiedKeys(services, schedule.client_name);
      verifiedByClient.set(schedule.client_name, verified);
    }
    const mine = backups.filter((b) => b.schedule_id === schedule.id)
      .map((b) => ({ key: b.key, created_at: parseKey(b.key).createdAt }));
    const plan = applyPolicy(mine, schedule.retention, {
      timeZone: schedule.timezone,
      verified,
    });
    // Whatever the policy says, the newest backup of a schedule is never deleted.
    if (plan.keep.length === 0 && plan.remove.length > 0) {
      const newest = plan.remove.shift()!;
      plan.keep.push({ ...newest, keep: true, reasons: ["newest backup is always kept"] });
    }
    plans.push({
      schedule_id: schedule.id,
      client_name: schedule.client_name,
      timezone: schedule.timezone,
      ...plan,
    });
  }
  return plans;
}

/** Keys of the client's backups that a verify job passed (the newest 1000 such jobs). */
async function verifiedKeys(services: Services, client: string): Promise<Set<string>> {
  const { jobs } = await services.store.list(
    { client_name: client, kind: "verify", status: "completed" },
    { limit: 1000 },
  );
  return new Set(jobs.map((j) => j.key).filter((k): k is string => k !== null));
}

export async function prune(
  services: Services,
  job: Job,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  const started = Date.now();
  const plans = await planPrune(services, {
    client_name: job.client_name,
    schedule_id: job.schedule_id,
  }, signal);
  const dryRun = job.params.dry_run ?? false;
  let removed = 0;
  const failures: Array<{ key: string; error: string }> = [];
  if (!dryRun) {
    for (const plan of plans) {
      for (const d of plan.remove) {
        signal.throwIfAborted();
        try {
          await deleteBackup(services.repository, d.key);
          removed++;
          logger.info("Pruned backup", { key: d.key, schedule_id: plan.schedule_id });
        } catch (error) {
          failures.push({ key: d.key, error: (error as Error).message });
        }
      }
    }
  }
  let mirrors: MirrorGc[];
  if (dryRun) {
    mirrors = await planMirrorGc(services, { client_name: job.client_name }, plans);
  } else {
    // Every time, not only when a run was removed: a collection killed part way
    // (or a run deleted by hand) leaves versions that the next prune frees.
    mirrors = [];
    for (const client of mirrorClients(services, { client_name: job.client_name })) {
      const runs = plans.filter((p) => p.client_name === client)
        .flatMap((p) => p.remove.map((d) => d.key)).filter(isListingKey);
      try {
        const gc = await collectVersions(
          services.repository,
          client,
          signal,
          hostIdentities(services),
        );
        mirrors.push({ client_name: client, runs, ...gc });
      } catch (error) {
        if (signal.aborted) throw error;
        failures.push({
          key: `mirror versions of ${client}`,
          error: (error as Error).message,
        });
      }
    }
  }
  if (failures.length) {
    throw new Error(
      `Prune removed ${plural(removed, "backup")} but failed on ${failures.length}: ${
        failures.map((f) => `${f.key}: ${f.error}`).join("; ")
      }`,
    );
  }
  return {
    dry_run: dryRun,
    removed,
    kept: plans.reduce((n, p) => n + p.keep.length, 0),
    would_remove: dryRun ? plans.reduce((n, p) => n + p.remove.length, 0) : 0,
    duration_ms: Date.now() - started,
    schedules: plans,
    mirrors,
  };
}

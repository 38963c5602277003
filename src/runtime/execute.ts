import { CairnError } from "../errors.ts";
import type { ArtifactAccess, Engine, EngineContext, ProgressUpdate } from "../engines/engine.ts";
import { engineFor } from "../engines/registry.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import { checkFile, verifyingStream } from "../repository/hashing.ts";
import { backupKey, manifestKey, parseKey } from "../repository/keys.ts";
import {
  listBackupKeys,
  type Manifest,
  MANIFEST_FORMAT,
  readManifest,
  writeManifest,
} from "../repository/manifest.ts";
import { VERSION } from "../version.ts";
import { KeyTakenError, LeaseLostError } from "../store/store.ts";
import { prune } from "./prune.ts";
import { checkRepository } from "../repository/check.ts";
import { keyState, removeOrphan, resultFromManifest } from "./recover.ts";
import { requireClient, type Services } from "./services.ts";
import { forgetTarget, unsealTarget } from "./target_secrets.ts";

/** What the attempt runner hands to a job while it runs. */
export interface RunHooks {
  signal: AbortSignal;
  progress: (update: ProgressUpdate) => void;
  /** Records the artifact key on the job as soon as it is chosen. */
  setKey: (key: string) => Promise<void>;
  /**
   * Renews the lease now; LeaseLostError when another worker owns the job. Called
   * right before a backup's manifest is written, so that a worker whose lease lapsed
   * (and whose artifact a sweep may have removed) does not list a backup.
   */
  confirmLease?: () => Promise<void>;
}

export function executeJob(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  switch (job.kind) {
    case "backup":
      return runBackup(services, job, hooks);
    case "restore":
      return runRestore(services, job, hooks);
    case "verify":
      return runVerify(services, job, hooks);
    case "prune":
      return prune(services, job, hooks.signal);
    case "check":
      return checkRepository(services.repository, {
        readData: job.params.read_data ?? false,
        signal: hooks.signal,
        onProgress: (bytes, phase) => hooks.progress({ bytes_done: bytes, phase }),
      }) as unknown as Promise<Record<string, unknown>>;
  }
}

function engineContext(
  services: Services,
  job: Job,
  hooks: RunHooks,
  clientName: string,
): EngineContext<any> {
  return {
    jobId: job.id,
    clientName,
    client: requireClient(services.config, clientName),
    signal: hooks.signal,
    progress: hooks.progress,
    tools: services.config.tools,
    repository: services.repository,
    scratch: services.scratch,
  };
}

/**
 * A key no backup uses and no other backup job holds, fixed on the job before it
 * returns. Two backups of one client in the same millisecond must not share a key:
 * the store refuses a key another job holds (KeyTakenError), the repository shows
 * keys of backups whose jobs are gone.
 */
async function fixFreshKey(
  services: Services,
  client: string,
  label: string,
  engine: Engine,
  setKey: (key: string) => Promise<void>,
): Promise<string> {
  let at = Date.now();
  for (;; at++) {
    const key = backupKey(client, new Date(at), label, engine.extension);
    const taken = await Promise.all([
      services.repository.stat(key),
      services.repository.stat(manifestKey(key)),
    ]);
    if (taken[0] || taken[1]) continue;
    try {
      await setKey(key);
      return key;
    } catch (error) {
      if (!(error instanceof KeyTakenError)) throw error;
    }
  }
}

async function runBackup(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  const clientName = job.client_name!;
  const client = requireClient(services.config, clientName);
  const engine = await engineFor(client, clientName);
  const started = Date.now();
  // The key is fixed on the job before anything is written under it, so a re-run
  // after a crash knows where to look: its own backup there means the job is done.
  let key = job.key;
  if (key !== null) {
    const found = await keyState(services.repository, key, job.id);
    if (found.state === "complete") {
      logger.info("The job's backup already exists; finishing the job", { job_id: job.id, key });
      return resultFromManifest(found.manifest);
    }
    if (found.state === "partial") {
      await removeOrphan(services.repository, key, `job ${job.id} runs again`);
    }
    if (found.state === "foreign") key = null; // never ours to write: take a new one
  }
  if (key === null) {
    key = await fixFreshKey(services, clientName, job.label ?? "manual", engine, hooks.setKey);
  }
  const ctx = engineContext(services, job, hooks, clientName);
  const output = await engine.backup(ctx);
  let stored = false;
  try {
    const put = await services.repository.put(key, output.body, {
      signal: hooks.signal,
      onProgress: (bytes) => hooks.progress({ bytes_done: bytes, phase: "storing" }),
    });
    stored = true;
    const facts = await output.facts;
    hooks.signal.throwIfAborted();
    const manifest: Manifest = {
      format_version: MANIFEST_FORMAT,
      key,
      client_name: clientName,
      kind: client.kind,
      label: job.label ?? "manual",
      created_at: parseKey(key).createdAt.toISOString(),
      size_bytes: put.size,
      sha256: put.sha256,
      job_id: job.id,
      schedule_id: job.schedule_id,
      tool_versions: { cairn: VERSION, ...facts.tool_versions },
      facts: facts.facts,
    };
    // The manifest is written last: until it exists, the backup does not.
    await hooks.confirmLease?.();
    await writeManifest(services.repository, manifest);
    return {
      key,
      size_bytes: put.size,
      sha256: put.sha256,
      duration_ms: Date.now() - started,
      ...facts.counters,
      ...(facts.warnings?.length ? { warnings: facts.warnings } : {}),
    };
  } catch (error) {
    output.body.cancel(error).catch(() => {});
    // With the lease lost, another worker owns the job and may be writing this key.
    const leaseLost = error instanceof LeaseLostError ||
      (hooks.signal.reason as { reason?: string } | undefined)?.reason === "lease-lost";
    if (stored && !leaseLost) {
      // A failed job leaves no backup: the manifest too, should its write have got
      // as far as the rename. What cannot be removed now, the sweep removes later.
      const k = key;
      await services.repository.remove(manifestKey(k))
        .then(() => services.repository.remove(k))
        .catch((e) =>
          logger.warn("Could not remove a partial artifact", { key: k, error: String(e) })
        );
    }
    throw error;
  } finally {
    await output.cleanup?.();
  }
}

/** The client's newest backup in the repository; BACKUP_NOT_FOUND when it has none. */
async function newestBackupKey(services: Services, client: string): Promise<string> {
  const [newest] = await listBackupKeys(services.repository, client);
  if (!newest) {
    throw new CairnError(
      "BACKUP_NOT_FOUND",
      `Client ${client} has no backup to rehearse yet: a verify schedule checks the newest one`,
    );
  }
  return newest;
}

async function loadForRestore(services: Services, job: Job) {
  const key = job.key;
  if (!key) throw new CairnError("VALIDATION_FAILED", `Job ${job.id} has no backup key`);
  parseKey(key);
  const manifest = await readManifest(services.repository, key);
  const clientName = job.client_name ?? manifest.client_name;
  const client = requireClient(services.config, clientName);
  if (client.kind !== manifest.kind) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Backup ${key} is a ${manifest.kind} backup; client ${clientName} is of kind ${client.kind}`,
    );
  }
  if (!(await services.repository.stat(key))) {
    throw new CairnError(
      "BACKUP_NOT_FOUND",
      `The artifact of ${key} is missing from the repository (its manifest exists)`,
    );
  }
  return { key, manifest, clientName, engine: await engineFor(client, clientName) };
}

function opener(services: Services, manifest: Manifest, hooks: RunHooks) {
  return async () =>
    (await services.repository.get(manifest.key)).pipeThrough(
      verifyingStream(
        { sha256: manifest.sha256, size: manifest.size_bytes, key: manifest.key },
        (bytes) =>
          hooks.progress({ bytes_done: bytes, bytes_total: manifest.size_bytes, phase: "reading" }),
      ),
    );
}

/**
 * The ways an engine reads one artifact. The whole-artifact check runs at most once:
 * a local file in one pass of MiB reads, anything else by draining a verifying stream.
 */
function artifactAccess(services: Services, manifest: Manifest, hooks: RunHooks): ArtifactAccess {
  const open = opener(services, manifest, hooks);
  const path = services.repository.localPath(manifest.key);
  let checking: Promise<void> | null = null;
  const check = () =>
    checking ??= path === null ? drain(open(), hooks.signal) : checkFile(
      path,
      { sha256: manifest.sha256, size: manifest.size_bytes, key: manifest.key },
      {
        signal: hooks.signal,
        onProgress: (bytes) =>
          hooks.progress({
            bytes_done: bytes,
            bytes_total: manifest.size_bytes,
            phase: "checking",
          }),
      },
    );
  return {
    open,
    check,
    read: async () => {
      await check();
      // A checked local file is read as it is; anything else is checked again as it comes.
      return path !== null ? await services.repository.get(manifest.key) : await open();
    },
    verifiedFile: async () => {
      if (path === null) return null;
      await check();
      return path;
    },
    raw: () => services.repository.get(manifest.key),
    rawPath: path,
  };
}

/** Reads a stream to its end (a verifying stream fails there if the bytes are wrong). */
async function drain(
  opening: Promise<ReadableStream<Uint8Array>>,
  signal: AbortSignal,
): Promise<void> {
  const reader = (await opening).getReader();
  for (;;) {
    signal.throwIfAborted();
    if ((await reader.read()).done) return;
  }
}

async function runRestore(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  const started = Date.now();
  const { key, manifest, clientName, engine } = await loadForRestore(services, job);
  const out = await engine.restore(engineContext(services, job, hooks, clientName), {
    manifest,
    ...artifactAccess(services, manifest, hooks),
    target: unsealTarget(job.params),
    replace: job.params.replace ?? false,
    flush: job.params.flush ?? false,
    ...(job.params.tables ? { tables: job.params.tables } : {}),
    ...(job.params.no_owner !== undefined ? { no_owner: job.params.no_owner } : {}),
    ...(job.params.keep_old !== undefined ? { keep_old: job.params.keep_old } : {}),
  });
  forgetTarget(job.params);
  return { key, duration_ms: Date.now() - started, ...out };
}

async function runVerify(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  const started = Date.now();
  if (job.key === null && job.client_name !== null) {
    // A verify schedule's job rehearses the client's newest backup, named at run time.
    job = { ...job, key: await newestBackupKey(services, job.client_name) };
    await hooks.setKey(job.key!);
  }
  const { key, manifest, clientName, engine } = await loadForRestore(services, job);
  // First the bytes against the manifest's sha256, then the content: a damaged
  // artifact is reported as damaged, not as whatever its parser trips over.
  const access = artifactAccess(services, manifest, hooks);
  await access.check();
  const checks = await engine.verify(engineContext(services, job, hooks, clientName), {
    manifest,
    ...access,
  });
  return {
    key,
    sha256: manifest.sha256,
    size_bytes: manifest.size_bytes,
    sha256_ok: true,
    duration_ms: Date.now() - started,
    checks,
  };
}

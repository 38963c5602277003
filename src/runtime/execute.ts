import { CairnError, FailureWithResult } from "../errors.ts";
import type { EngineContext, ProgressUpdate } from "../engines/engine.ts";
import { engineFor } from "../engines/registry.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import {
  artifactAccess,
  artifactTransforms,
  checkStored,
  verifyingAccess,
} from "../pipeline/read.ts";
import { writeArtifact } from "../pipeline/write.ts";
import { loadKeys, requireIdentityFor } from "../pipeline/identity.ts";
import { sealFacts, unsealFacts } from "../pipeline/facts.ts";
import {
  ageRecipients,
  chainedExtension,
  type CompressionName,
  isEncrypted,
  plannedTransforms,
  type Transform,
} from "../pipeline/transforms.ts";
import {
  backupKey,
  isMirrorListingKey,
  manifestKey,
  mirrorRefsKey,
  parseKey,
} from "../repository/keys.ts";
import {
  listBackupKeys,
  type Manifest,
  MANIFEST_FORMAT,
  readManifest,
} from "../repository/manifest.ts";
import { isObjectExists } from "../repository/capabilities.ts";
import { artifactRefused, publishManifest } from "./publish.ts";
import { VERSION } from "../version.ts";
import { KeyTakenError, LeaseLostError } from "../store/store.ts";
import { prune } from "./prune.ts";
import { checkRepository } from "../repository/check.ts";
import { checkFailureMessage } from "../repository/check_outcome.ts";
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
      return runCheck(services, job, hooks);
  }
}

/**
 * A check job: its result is the report when the repository is clean. Problems fail
 * the job (CHECK_FOUND_PROBLEMS, not retried: the repository holds what it holds),
 * so the dead-letter queue, job_failed notifications and metrics see them; the failed
 * job's result is still the whole report, with `error_code`.
 */
async function runCheck(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  const report = await checkRepository(services.repository, {
    readData: job.params.read_data ?? false,
    signal: hooks.signal,
    onProgress: (bytes, phase) => hooks.progress({ bytes_done: bytes, phase }),
    identities: async () => (await loadKeys(services.config.repository.encryption)).identities,
  });
  if (report.clean) return { ...report };
  throw new FailureWithResult(
    "CHECK_FOUND_PROBLEMS",
    checkFailureMessage(report, services.repository.location),
    { ...report, error_code: "CHECK_FOUND_PROBLEMS" },
  );
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
    ...(job.params.force ? { force: true } : {}),
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
  ext: string,
  setKey: (key: string) => Promise<void>,
): Promise<string> {
  let at = Date.now();
  for (;; at++) {
    const key = backupKey(client, new Date(at), label, ext);
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
    if (found.state === "absent" && isMirrorListingKey(key!)) {
      // A reference list without its listing: an earlier attempt's, which stopped (or
      // lost its lease) before listing; this run writes its own, without overwrite.
      await services.repository.remove(mirrorRefsKey(key!));
    }
  }
  // The key's extension names the transforms, so a re-run keeps the ones it chose.
  const transforms = key !== null
    ? transformsOfKey(key, await backupTransforms(services, client))
    : await backupTransforms(services, client);
  if (key === null) {
    key = await fixFreshKey(
      services,
      clientName,
      job.label ?? "manual",
      chainedExtension(engine.extension, transforms),
      hooks.setKey,
    );
  }
  const keys = await loadKeys(services.config.repository.encryption);
  // The recipients the key names (a re-run keeps its transforms), not only the config's.
  const recipients = ageRecipients(transforms);
  const ctx = {
    ...engineContext(services, job, hooks, clientName),
    keys: { ...keys, recipients },
    artifactKey: key,
  };
  const output = await engine.backup(ctx);
  let stored = false;
  try {
    // Published without overwrite: this attempt may have lost its lease by the time
    // its bytes land (a frozen worker), and must never replace what the attempt that
    // took the job over stored (runtime/publish.ts).
    const written = await writeArtifact(services.repository, key, output.body, transforms, {
      signal: hooks.signal,
      onProgress: (bytes) => hooks.progress({ bytes_done: bytes, phase: "storing" }),
      ifAbsent: true,
    }).catch(async (error) => {
      if (!isObjectExists(error)) throw error;
      return { refused: await artifactRefused(services.repository, key!, job) };
    });
    if ("refused" in written) return written.refused;
    const put = written.stored;
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
      facts: recipients.length > 0 ? {} : facts.facts,
      transforms,
      plain_size_bytes: written.plain.size,
      plain_sha256: written.plain.sha256,
      ...(recipients.length > 0 ? { sealed_facts: await sealFacts(facts.facts, recipients) } : {}),
    };
    // The manifest is written last: until it exists, the backup does not.
    const confirmLease = hooks.confirmLease ?? (() => Promise.resolve());
    await confirmLease();
    const listed = await publishManifest(services.repository, manifest, job, confirmLease);
    if (listed) return listed;
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
    // A publish refused because the key holds another attempt's (or job's) objects:
    // none of them is this attempt's to remove.
    const othersKey = isObjectExists(error);
    if (stored && !leaseLost && !othersKey) {
      // A failed job leaves no backup: the manifest too, should its write have got
      // as far as the rename. What cannot be removed now, the sweep removes later.
      const k = key;
      await services.repository.remove(manifestKey(k))
        .then(() => services.repository.remove(k))
        .catch((e) =>
          logger.warn("Could not remove a partial artifact", { key: k, error: String(e) })
        );
    }
    if (!leaseLost && !othersKey && isMirrorListingKey(key)) {
      // A mirror run writes its reference list before its listing (versions.ts).
      await services.repository.remove(mirrorRefsKey(key)).catch(() => {});
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

/**
 * The transforms new backups of this client get: the client's compression settings
 * over the repository's, and the repository's encryption. The s3 mirror's listing
 * is an artifact like any other; its objects are stored by the engine, encrypted for
 * the same recipients and never compressed (engines/s3mirror/stored_copy.ts).
 */
async function backupTransforms(
  services: Services,
  client: { kind: string; compression?: CompressionName; compression_level?: number },
): Promise<Transform[]> {
  const repo = services.config.repository;
  const compression = client.compression ?? repo.compression ?? "zstd";
  const sameAlgorithm = client.compression === undefined || client.compression === repo.compression;
  const level = client.compression_level ??
    (sameAlgorithm ? repo.compression_level : undefined);
  const keys = await loadKeys(repo.encryption);
  return plannedTransforms({ compression, level, recipients: keys.recipients });
}

/**
 * A job that runs again keeps the transforms its key names (the settings may have
 * changed between attempts, or the key was fixed by an earlier release): the current
 * ones where they agree, else the key's own at their default levels. A key naming
 * `.age` on a host with no recipients any more cannot be written: VALIDATION_FAILED.
 */
function transformsOfKey(key: string, current: Transform[]): Transform[] {
  const parsed = parseKey(key);
  const wanted = [
    ...(parsed.compression ? [parsed.compression === "zst" ? "zstd" : "gzip"] : []),
    ...(parsed.encrypted ? ["age"] : []),
  ];
  if (current.map((t) => t.name).join(".") === wanted.join(".")) return current;
  const recipients = ageRecipients(current);
  if (parsed.encrypted && recipients.length === 0) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `The job's key ${key} asks for encryption, and no age recipients are configured any more; start a new backup`,
    );
  }
  return plannedTransforms({
    compression: (wanted.find((n) => n !== "age") ?? "none") as CompressionName,
    recipients: parsed.encrypted ? recipients : [],
  });
}

/** Read options for the pipeline, with the identities of this host. */
async function readOptions(services: Services, hooks: RunHooks) {
  const keys = await loadKeys(services.config.repository.encryption);
  return {
    keys,
    options: {
      identities: keys.identities,
      scratch: services.scratch,
      signal: hooks.signal,
      progress: hooks.progress,
    },
  };
}

/**
 * The manifest as an engine needs it: facts unsealed with this host's identities.
 * Fails up front (IDENTITY_MISSING, naming where identities are looked for) when the
 * backup is encrypted and this host cannot open it.
 */
async function openManifest(
  manifest: Manifest,
  keys: Awaited<ReturnType<typeof loadKeys>>,
): Promise<Manifest> {
  const transforms = artifactTransforms(manifest);
  if (!isEncrypted(transforms)) return manifest;
  const recorded = ageRecipients(transforms);
  await requireIdentityFor(recorded, keys);
  if (manifest.sealed_facts === undefined) return manifest;
  return { ...manifest, facts: await unsealFacts(manifest.sealed_facts, keys.identities) };
}

async function runRestore(
  services: Services,
  job: Job,
  hooks: RunHooks,
): Promise<Record<string, unknown>> {
  const started = Date.now();
  const loaded = await loadForRestore(services, job);
  const { key, clientName, engine } = loaded;
  const { keys, options } = await readOptions(services, hooks);
  const manifest = await openManifest(loaded.manifest, keys);
  const out = await engine.restore({ ...engineContext(services, job, hooks, clientName), keys }, {
    manifest,
    ...artifactAccess(services.repository, manifest, options),
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
  const rehearsal = job.key === null && job.client_name !== null;
  if (rehearsal) {
    // A verify schedule's job rehearses the client's newest backup, named at run time.
    job = { ...job, key: await newestBackupKey(services, job.client_name!) };
    await hooks.setKey(job.key!);
  }
  const loaded = await loadForRestore(services, job);
  const { key, clientName, engine } = loaded;
  const { keys, options } = await readOptions(services, hooks);
  const encrypted = isEncrypted(artifactTransforms(loaded.manifest));
  if (encrypted && keys.identities.length === 0) {
    // A rehearsal promises the content restores: a write-only host cannot keep that
    // promise, and a pass that checked only the stored bytes would say it had.
    if (rehearsal) {
      await requireIdentityFor(ageRecipients(artifactTransforms(loaded.manifest)), keys);
    }
    // A write-only host proves what it can: every stored byte against the sha256.
    await checkStored(services.repository, loaded.manifest, options);
    return {
      key,
      sha256: loaded.manifest.sha256,
      size_bytes: loaded.manifest.size_bytes,
      sha256_ok: true,
      duration_ms: Date.now() - started,
      checks: {
        content: "not checked: the backup is encrypted and this host has no age identity " +
          "(repository.encryption.identity_file)",
      },
    };
  }
  const manifest = await openManifest(loaded.manifest, keys);
  // One read of the artifact: the kind's check reads the plain bytes as they are
  // decoded, and settle() reads what it left and proves the stored and the plain
  // sha256. A damaged artifact is reported as damaged, not as whatever the kind's
  // parser tripped over; an engine's check may read only part of the artifact
  // (pg_restore --list reads the head).
  const { access, settle } = verifyingAccess(services.repository, manifest, options);
  let checks: Record<string, unknown> | undefined;
  let failure: unknown = null;
  try {
    checks = await engine.verify({ ...engineContext(services, job, hooks, clientName), keys }, {
      manifest,
      ...access,
    });
  } catch (error) {
    failure = error;
  }
  await settle();
  if (failure !== null) throw failure;
  return {
    key,
    sha256: manifest.sha256,
    size_bytes: manifest.size_bytes,
    sha256_ok: true,
    ...(manifest.plain_sha256 ? { plain_sha256_ok: true } : {}),
    duration_ms: Date.now() - started,
    checks,
  };
}

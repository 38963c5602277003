import { toError } from "../errors.ts";
import { contentHasher } from "../io/hashing.ts";
import { type IdentitySource, orphanedVersions } from "../engines/s3mirror/versions.ts";
import {
  artifactKeyOf,
  isManifestKey,
  isMirrorListingKey,
  keyProblem,
  manifestKey,
  parseKey,
} from "./keys.ts";
import { readManifest } from "./manifest.ts";
import { checkUploads } from "./check_uploads.ts";
import type { Repository } from "./repository.ts";
import { partialWrites } from "./capabilities.ts";

/** What a repository check can find. */
export type ProblemKind =
  | "artifact_missing"
  | "size_mismatch"
  | "manifest_unreadable"
  | "artifact_without_manifest"
  | "temp_leftover"
  | "orphaned_version"
  | "checksum_mismatch"
  | "read_failed";

export interface Problem {
  kind: ProblemKind;
  key: string;
  message: string;
  /** An unfinished multipart upload (S3): when it was initiated (ISO 8601, null: unknown). */
  initiated_at?: string | null;
  /** An unfinished multipart upload (S3): its upload id. */
  upload_id?: string;
}

export interface CheckReport {
  clean: boolean;
  problems: Problem[];
  manifests: number;
  artifacts: number;
  /** Bytes read and hashed (only with readData). */
  bytes_read: number;
  read_data: boolean;
  duration_ms: number;
  /**
   * S3: unfinished multipart uploads younger than 24 h (a backup writing now, most
   * likely): listed, not problems. Absent on an fs repository.
   */
  uploads_in_progress?: { key: string; upload_id: string; initiated_at: string | null }[];
  /** What the check could not look at, and why. */
  notes?: string[];
}

/** Names interrupted writes leave: fs puts write `.tmp/*.part`; other writers end in .tmp/.part. */
const TEMP_NAME = /(\.part|\.tmp)$/;

/**
 * Checks a repository's structure, and with `readData` every stored byte (after
 * restic's `check --read-data`): each manifest is readable and its artifact exists
 * with the recorded size (and sha256); each artifact under backups/ has a manifest;
 * no temporary leftovers of interrupted writes remain (on S3, unfinished multipart
 * uploads older than 24 h: check_uploads.ts); each s3 mirror's kept versions are all
 * referred to by a run or the running state (an orphaned version is what a
 * collection killed part way, or a run deleted by hand, leaves: the next prune frees
 * it). Reports every problem; never changes the repository. The mirrored objects'
 * bytes (mirrors/) are not read here; a verify of a run reads them.
 */
export async function checkRepository(
  repo: Repository,
  options: {
    readData?: boolean;
    signal?: AbortSignal;
    onProgress?: (bytes: number, phase: string) => void;
    /** This host's identities, for a mirror run without a reference list. */
    identities?: IdentitySource;
  } = {},
): Promise<CheckReport> {
  const started = Date.now();
  const problems: Problem[] = [];
  const objects = new Map<string, number>();
  for await (const o of repo.list("backups/")) {
    options.signal?.throwIfAborted();
    objects.set(o.key, o.size);
  }
  const manifests = [...objects.keys()].filter(isManifestKey);
  const artifacts = [...objects.keys()].filter((k) => !isManifestKey(k) && !TEMP_NAME.test(k));
  let bytesRead = 0;
  for (const mKey of manifests) {
    options.signal?.throwIfAborted();
    const key = artifactKeyOf(mKey);
    if (keyProblem(key) !== null) {
      problems.push({
        kind: "manifest_unreadable",
        key: mKey,
        message: `${mKey} is not named like a backup's manifest (${keyProblem(key)})`,
      });
      continue;
    }
    let manifest;
    try {
      manifest = await readManifest(repo, key);
    } catch (error) {
      problems.push({ kind: "manifest_unreadable", key, message: toError(error).message });
      continue;
    }
    const size = objects.get(key);
    if (size === undefined) {
      problems.push({
        kind: "artifact_missing",
        key,
        message: `the manifest of ${key} exists but its artifact does not`,
      });
      continue;
    }
    if (size !== manifest.size_bytes) {
      problems.push({
        kind: "size_mismatch",
        key,
        message: `${key} holds ${size} bytes; its manifest records ${manifest.size_bytes}`,
      });
      continue;
    }
    if (!options.readData) continue;
    options.onProgress?.(bytesRead, "reading data");
    const before = bytesRead;
    try {
      const hasher = contentHasher((n: number) => {
        bytesRead = before + n;
      });
      for await (const chunk of await repo.get(key)) {
        options.signal?.throwIfAborted();
        hasher.update(chunk);
        options.onProgress?.(bytesRead, "reading data");
      }
      const got = hasher.result();
      if (got.sha256 !== manifest.sha256 || got.size !== manifest.size_bytes) {
        problems.push({
          kind: "checksum_mismatch",
          key,
          message:
            `${key}: sha256 of the stored bytes is ${got.sha256}, the manifest records ${manifest.sha256}`,
        });
      }
    } catch (error) {
      if (options.signal?.aborted) throw error;
      problems.push({ kind: "read_failed", key, message: toError(error).message });
    }
  }
  for (const key of artifacts) {
    if (!objects.has(manifestKey(key))) {
      problems.push({
        kind: "artifact_without_manifest",
        key,
        message: `${key} has no manifest (an interrupted backup, or its manifest was removed)`,
      });
    }
  }
  for (const key of objects.keys()) {
    if (TEMP_NAME.test(key)) {
      problems.push({ kind: "temp_leftover", key, message: `${key} is a temporary leftover` });
    }
  }
  for (const client of await mirrorClients(repo, objects.keys())) {
    options.signal?.throwIfAborted();
    try {
      for (const v of await orphanedVersions(repo, client, options.identities)) {
        problems.push({
          kind: "orphaned_version",
          key: v.key,
          message:
            `${v.key} (${v.size} bytes) is a kept version of mirror ${client} that no run refers to (the next prune frees it)`,
        });
      }
    } catch (error) {
      if (options.signal?.aborted) throw error;
      problems.push({
        kind: "read_failed",
        key: `mirror versions of ${client}`,
        message: `The runs of mirror ${client} cannot be read to check its kept versions: ${
          toError(error).message
        }`,
      });
    }
  }
  // Multipart uploads are sorted by age below (a young one is a backup writing now).
  const partial = partialWrites(repo);
  for (const name of partial.unfinishedUploads ? [] : await partial.list()) {
    problems.push({
      kind: "temp_leftover",
      key: name,
      message: `${name} is the leftover of an interrupted write (the daemon's sweep removes it)`,
    });
  }
  const uploads = await checkUploads(repo, started);
  problems.push(...uploads.problems);
  return {
    clean: problems.length === 0,
    problems,
    manifests: manifests.length,
    artifacts: artifacts.length,
    bytes_read: bytesRead,
    read_data: options.readData ?? false,
    duration_ms: Date.now() - started,
    ...(partial.unfinishedUploads ? { uploads_in_progress: uploads.in_progress } : {}),
    ...(uploads.note ? { notes: [uploads.note] } : {}),
  };
}

/**
 * The s3 mirror clients in the repository: those with a running state
 * (`state/mirrors/<client>.json`, which every run that kept a version wrote) or a run.
 */
async function mirrorClients(repo: Repository, keys: Iterable<string>): Promise<string[]> {
  const clients = new Set<string>();
  for (const key of keys) if (isMirrorListingKey(key)) clients.add(parseKey(key).client);
  for await (const o of repo.list("state/mirrors/")) {
    const m = /^state\/mirrors\/([a-z0-9_-]{1,63})\.json$/.exec(o.key);
    if (m) clients.add(m[1]);
  }
  return [...clients].sort();
}

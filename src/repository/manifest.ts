import { z } from "zod";
import { CairnError } from "../errors.ts";
import {
  artifactKeyOf,
  isManifestKey,
  isMirrorListingKey,
  keyProblem,
  manifestKey,
  mirrorRefsKey,
  parseKey,
} from "./keys.ts";
import type { Repository } from "./repository.ts";
import { putIfAbsent } from "./capabilities.ts";
import { TransformSchema } from "../pipeline/transforms.ts";

/**
 * 2: the artifact pipeline (transforms, plain size and sha256, sealed facts). Format 1
 * manifests (no transforms recorded) stay readable: see artifactTransforms().
 */
export const MANIFEST_FORMAT = 2;

export const ManifestSchema = z.looseObject({
  format_version: z.number().int().positive(),
  key: z.string(),
  client_name: z.string(),
  kind: z.enum(["postgres", "redis", "sqlite", "directory", "s3"]),
  label: z.string(),
  created_at: z.string(),
  size_bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  job_id: z.number().int().nullable(),
  schedule_id: z.number().int().nullable(),
  tool_versions: z.record(z.string(), z.string()),
  facts: z.record(z.string(), z.unknown()),
  /** The transforms applied to the plain artifact, in order (format 2). */
  transforms: z.array(TransformSchema).optional(),
  /** The plain artifact's size and sha256, checked after decoding (format 2). */
  plain_size_bytes: z.number().int().nonnegative().optional(),
  plain_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /**
   * When the backup is encrypted: `facts` (database, table and key names, counts)
   * encrypted for the same recipients, as the base64 of an age file; `facts` is then {}.
   */
  sealed_facts: z.string().optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export function manifestSummary(m: Manifest) {
  return {
    key: m.key,
    client_name: m.client_name,
    kind: m.kind,
    label: m.label,
    created_at: m.created_at,
    size_bytes: m.size_bytes,
    sha256: m.sha256,
    job_id: m.job_id,
    schedule_id: m.schedule_id,
  };
}
export type ManifestSummary = ReturnType<typeof manifestSummary>;

/**
 * Lists a backup. With `ifAbsent`, never replaces a manifest that is there
 * (OBJECT_EXISTS): how a backup job publishes (runtime/publish.ts).
 */
export async function writeManifest(
  repo: Repository,
  manifest: Manifest,
  options: { ifAbsent?: boolean } = {},
): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
  const body = ReadableStream.from([bytes]);
  if (options.ifAbsent) await putIfAbsent(repo, manifestKey(manifest.key), body);
  else await repo.put(manifestKey(manifest.key), body);
}

export async function readManifest(repo: Repository, key: string): Promise<Manifest> {
  parseKey(key);
  let text: string;
  try {
    text = await new Response(await repo.get(manifestKey(key))).text();
  } catch (error) {
    if (error instanceof CairnError && error.code === "BACKUP_NOT_FOUND") {
      throw new CairnError("BACKUP_NOT_FOUND", `Backup not found: ${key}`);
    }
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CairnError("VERIFY_FAILED", `The manifest of ${key} is not valid JSON`);
  }
  const result = ManifestSchema.safeParse(parsed);
  if (!result.success || result.data.key !== key) {
    throw new CairnError(
      "VERIFY_FAILED",
      `The manifest of ${key} is malformed or names another key`,
    );
  }
  return result.data;
}

/**
 * Keys of every backup whose manifest exists, newest first. Names alone are enough
 * to sort and page; manifests are read only for the page shown.
 */
export async function listBackupKeys(repo: Repository, client?: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const obj of repo.list(client ? `backups/${client}/` : "backups/")) {
    if (!isManifestKey(obj.key)) continue;
    const key = artifactKeyOf(obj.key);
    if (keyProblem(key) === null) keys.push(key);
  }
  return keys.sort(compareNewestFirst);
}

export function compareNewestFirst(a: string, b: string): number {
  const pa = parseKey(a), pb = parseKey(b);
  if (pa.stamp !== pb.stamp) return pa.stamp < pb.stamp ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function listBackups(
  repo: Repository,
  options: { client?: string; limit?: number; cursor?: string | null } = {},
): Promise<{ backups: Manifest[]; next_cursor: string | null }> {
  let keys = await listBackupKeys(repo, options.client);
  if (options.cursor) {
    if (keyProblem(options.cursor) !== null) {
      throw new CairnError(
        "VALIDATION_FAILED",
        "Invalid cursor: pass next_cursor from a previous page",
        {
          details: [{ path: "cursor", message: "not a cursor returned by this API" }],
        },
      );
    }
    keys = keys.filter((k) => compareNewestFirst(k, options.cursor!) > 0);
  }
  const limit = options.limit ?? keys.length;
  const page = keys.slice(0, limit);
  const backups: Manifest[] = [];
  for (const key of page) {
    try {
      backups.push(await readManifest(repo, key));
    } catch (error) {
      // Deleted between listing and reading: it is simply gone.
      if (!(error instanceof CairnError && error.code === "BACKUP_NOT_FOUND")) throw error;
    }
  }
  return {
    backups,
    next_cursor: keys.length > limit && page.length > 0 ? page[page.length - 1] : null,
  };
}

/** The manifest goes first, so a half-finished delete never lists a backup without bytes. */
export async function deleteBackup(repo: Repository, key: string): Promise<void> {
  parseKey(key);
  if (!(await repo.stat(manifestKey(key)))) {
    throw new CairnError("BACKUP_NOT_FOUND", `Backup not found: ${key}`);
  }
  await repo.remove(manifestKey(key));
  await repo.remove(key);
  // Last: until the listing is gone, version collection may still read it from here.
  if (isMirrorListingKey(key)) await repo.remove(mirrorRefsKey(key));
}

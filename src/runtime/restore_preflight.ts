import { resolve } from "node:path";
import type { ClientConfig } from "../config/schema.ts";
import { credentialUrlProblem } from "../config/url_shape.ts";
import { CairnError } from "../errors.ts";
import { unseen } from "../lazy.ts";
import { isOccupied } from "../engines/fs_util.ts";
import { restoreDestination } from "../engines/postgres/conn.ts";
import { databaseHasObjects } from "../engines/postgres/databases.ts";
import { parseInfo, RedisConnection } from "../engines/redis/resp.ts";
import { explicitTargetDb, keyspaceOccupied } from "../engines/redis/target_db.ts";
import { describe, parseRedisUrl } from "../engines/redis/url.ts";
import { parseS3Target } from "../engines/s3mirror/keys.ts";
import type { Manifest } from "../repository/manifest.ts";
import { type EncryptionSettings, loadKeys, requireIdentityFor } from "../pipeline/identity.ts";
import { ageRecipients } from "../pipeline/transforms.ts";

/** Where a request came from: messages name CLI flags there, and body fields on the API. */
export type Surface = "cli" | "api";

/** How the operator says "replace" or "flush" on each surface. */
export function optionName(surface: Surface, option: "replace" | "flush"): string {
  if (surface === "cli") return option === "replace" ? "--yes" : "--flush";
  return `"${option}": true`;
}

export interface RestorePreflight {
  clientName: string;
  client: ClientConfig;
  manifest: Manifest;
  /** The target as the operator wrote it (with its password), or null for the client itself. */
  target: string | null;
  replace: boolean;
  flush: boolean;
  /** PostgreSQL: restore only these tables (the engine checks them one by one). */
  tables?: string[];
  /** The repository's encryption settings: where this host's identities are. */
  encryption?: EncryptionSettings;
}

/** A remote probe that has not answered by then is left to the job itself (ms). */
const REMOTE_TIMEOUT_MS = 5_000;

function invalidTarget(surface: Surface, message: string): CairnError {
  const field = surface === "cli" ? "--target" : "target";
  return new CairnError("VALIDATION_FAILED", `Invalid ${field}: ${message}`, {
    details: [{ path: "target", message }],
  });
}

function notEmpty(surface: Surface, what: string, options: ("replace" | "flush")[]): CairnError {
  const how = options.map((o) =>
    o === "flush"
      ? `${optionName(surface, "flush")} to empty it first`
      : `${optionName(surface, "replace")} to overwrite it`
  ).join(", or ");
  return new CairnError("TARGET_NOT_EMPTY", `Restore target ${what} is not empty: pass ${how}`);
}

/**
 * The target's shape for the client's kind, checked without I/O: a database name or a
 * postgres:// URL (postgres), a redis:// URL (redis), s3://BUCKET/PREFIX (s3), a path
 * (directory, sqlite). Throws VALIDATION_FAILED naming the field of `surface`.
 */
export function checkTargetShape(req: RestorePreflight, surface: Surface): void {
  const { client, target } = req;
  if (client.kind !== req.manifest.kind) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Backup ${req.manifest.key} is a ${req.manifest.kind} backup; client ${req.clientName} is of kind ${client.kind}`,
      { details: [{ path: "client_name", message: `must name a ${req.manifest.kind} client` }] },
    );
  }
  if (req.flush && client.kind !== "redis") {
    const field = surface === "cli" ? "--flush" : "flush";
    throw new CairnError(
      "VALIDATION_FAILED",
      `${field} applies only to Redis restores; client ${req.clientName} is of kind ${client.kind}`,
      { details: [{ path: "flush", message: "only for redis clients" }] },
    );
  }
  if (target === null) return;
  const unreadable = credentialUrlProblem(target);
  if (unreadable) {
    throw invalidTarget(surface, `the target URL cannot be read as written: ${unreadable}`);
  }
  try {
    switch (client.kind) {
      case "postgres":
        restoreDestination(client.url, target);
        return;
      case "redis":
        parseRedisUrl(target, "restore target");
        return;
      case "s3":
        // A run restores into a bucket, or into a local directory (an absolute path).
        if (target.startsWith("/")) return;
        if (!parseS3Target(target)) {
          throw invalidTarget(
            surface,
            `${
              JSON.stringify(target)
            } is not s3://BUCKET/PREFIX (a bucket of 3-63 of a-z, 0-9, . and -; no . or .. in the prefix), nor an absolute directory path`,
          );
        }
        return;
      case "directory":
      case "sqlite":
        if (target.trim() === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
          throw invalidTarget(surface, `a ${client.kind} restore goes to a path, not ${target}`);
        }
        return;
    }
  } catch (error) {
    if (error instanceof CairnError && error.code === "VALIDATION_FAILED") {
      throw error.details ? error : new CairnError("VALIDATION_FAILED", error.message, {
        details: [{ path: "target", message: error.message }],
      });
    }
    throw error;
  }
}

async function withTimeout<T>(work: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), REMOTE_TIMEOUT_MS))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether the target already holds something, asked the way each engine's restore
 * asks it. A remote target that cannot be reached now answers undefined: the job
 * itself then decides (and still refuses an occupied target).
 */
async function occupied(req: RestorePreflight): Promise<boolean | undefined> {
  const { client, target } = req;
  switch (client.kind) {
    case "directory":
    case "sqlite":
      return await isOccupied(resolve(target ?? client.path));
    case "postgres": {
      const dest = restoreDestination(client.url, target);
      return await withTimeout(databaseHasObjects(dest.server, dest.database)).catch(() =>
        undefined
      );
    }
    case "redis": {
      const probe = async () => {
        const conn = await RedisConnection.open(parseRedisUrl(target ?? client.url));
        try {
          const info = parseInfo(await conn.ok(["INFO", "keyspace"]));
          return keyspaceOccupied(info, explicitTargetDb(target ?? ""));
        } finally {
          conn.close();
        }
      };
      return await withTimeout(probe()).catch(() => undefined);
    }
    case "s3": {
      if (target?.startsWith("/")) return await isOccupied(target);
      const where = target ? parseS3Target(target)! : { bucket: client.bucket, prefix: "" };
      const probe = async () => {
        // Loaded here only: the S3 client libraries cost every other restore start-up time.
        const { S3Source } = await import(
          unseen("../engines/s3mirror/source.ts")
        ) as typeof import("../engines/s3mirror/source.ts");
        for await (const _ of new S3Source(client).list(where.prefix, where.bucket)) return true;
        return false;
      };
      return await withTimeout(probe()).catch(() => undefined);
    }
  }
}

function describeTarget(req: RestorePreflight): string {
  const { client, target } = req;
  switch (client.kind) {
    case "postgres":
      return `database ${restoreDestination(client.url, target).display}`;
    case "redis":
      return describe(parseRedisUrl(target ?? client.url));
    case "s3":
      return target ?? `s3://${client.bucket}/`;
    default:
      return resolve(target ?? client.path);
  }
}

/**
 * An encrypted backup this host holds no matching identity for is refused before it
 * becomes a job: IDENTITY_MISSING, naming the backup's recipients and where identities
 * are looked for (a write-only host, or a rotated key file that lost the old key).
 */
export async function requireDecryptable(
  manifest: Manifest,
  encryption: EncryptionSettings | undefined,
): Promise<void> {
  // Only format-2 manifests record transforms, and only they can be encrypted.
  const recorded = ageRecipients(manifest.transforms ?? []);
  if (recorded.length === 0) return;
  await requireIdentityFor(recorded, await loadKeys(encryption));
}

/**
 * Rejects a restore request that is a usage mistake before it becomes a job (so it
 * never reaches the dead-letter queue, nor a bulk requeue): a target of the wrong
 * shape for the kind (VALIDATION_FAILED), an encrypted backup this host cannot open
 * (IDENTITY_MISSING), or a target that already holds data without replace (or, for
 * redis, flush) (TARGET_NOT_EMPTY). Messages name the CLI's flags or
 * the API's body fields, by `surface`.
 */
export async function preflightRestore(req: RestorePreflight, surface: Surface): Promise<void> {
  checkTargetShape(req, surface);
  await requireDecryptable(req.manifest, req.encryption);
  if (req.replace || req.flush) return;
  // Some tables into a database: only those tables must be absent, which the restore
  // checks before it writes anything; the rest of the database is none of its business.
  if (req.client.kind === "postgres" && req.tables && req.tables.length > 0) return;
  if (await occupied(req)) {
    throw notEmpty(
      surface,
      describeTarget(req),
      req.client.kind === "redis" ? ["flush", "replace"] : ["replace"],
    );
  }
}

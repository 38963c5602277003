import type { ClientConfig, Config } from "../config/schema.ts";
import type { Extension } from "../repository/keys.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import type { Scratch } from "../io/scratch.ts";

export interface ProgressUpdate {
  bytes_done: number;
  bytes_total?: number | null;
  phase?: string;
}

/** What every engine call gets. Engines never touch the job store or HTTP. */
export interface EngineContext<C extends ClientConfig = ClientConfig> {
  jobId: number;
  clientName: string;
  client: C;
  signal: AbortSignal;
  progress: (update: ProgressUpdate) => void;
  tools: Config["tools"];
  repository: Repository;
  /** Where every scratch file goes (snapshot copies, passfiles): never the system temp dir. */
  scratch: Scratch;
  /**
   * A backup job's `force`: go past a safety guard for this one job (the s3 mirror's
   * mass-delete guard, max_delete_percent). Absent means false.
   */
  force?: boolean;
}

/** Facts a backup reports for its manifest and job result. */
export interface BackupFacts {
  tool_versions: Record<string, string>;
  /** Kind-specific manifest facts (row counts, key counts, file counts...). */
  facts: Record<string, unknown>;
  /**
   * The kind's counters for the job result (SPEC section 4): numbers, and the list a
   * count is about where an operator needs the names (the s3 mirror's `failed`).
   */
  counters: Record<string, unknown>;
  /** Things the operator should know about a backup that completed (put in the job result). */
  warnings?: string[];
}

export interface BackupOutput {
  /** The artifact bytes; the caller streams them into the repository. */
  body: ReadableStream<Uint8Array>;
  /** Settles once the body has been fully read: the facts, or why the backup is bad. */
  facts: Promise<BackupFacts>;
  /** Releases temporary resources (child processes, scratch files) whatever happened. */
  cleanup?: () => Promise<void>;
}

/** How an engine reads the artifact it restores or verifies. */
export interface ArtifactAccess {
  /** Opens the artifact; the stream errors at its end if the bytes do not match the manifest. */
  open: () => Promise<ReadableStream<Uint8Array>>;
  /** Reads the whole artifact against the manifest (once; later calls share the result). */
  check: () => Promise<void>;
  /** The bytes after check(): without a second hash where the checked file is local. */
  read: () => Promise<ReadableStream<Uint8Array>>;
  /**
   * The artifact as a local file whose bytes have been checked against the manifest
   * (a full read, done once), for tools that read a file faster than a pipe; null
   * when the repository is not local, and open() is the way.
   */
  verifiedFile: () => Promise<string | null>;
  /**
   * The bytes as stored, checked by nothing: only for an engine whose format carries
   * its own checksum over every byte and which checks it itself (an RDB's CRC-64).
   */
  raw: () => Promise<ReadableStream<Uint8Array>>;
  /**
   * The artifact's local file, checked by nothing (as raw()), or null when the
   * repository is not local: for a check that reads a file faster than a stream,
   * and to know that a second read costs no download.
   */
  rawPath: string | null;
}

export interface RestoreRequest extends ArtifactAccess {
  manifest: Manifest;
  /** Where to restore, with any credential in it (never stored: see runtime/target_secrets.ts). */
  target: string | null;
  replace: boolean;
  flush: boolean;
  /** PostgreSQL: only these tables (`schema.table`, parts quoted as SQL identifiers). */
  tables?: string[];
  /** PostgreSQL: restore without owners and grants. */
  no_owner?: boolean;
  /** PostgreSQL: keep the replaced database as `<name>_pre_restore_<stamp>` instead of dropping it. */
  keep_old?: boolean;
}

export interface VerifyRequest extends ArtifactAccess {
  manifest: Manifest;
}

export interface Engine<C extends ClientConfig = ClientConfig> {
  readonly kind: C["kind"];
  readonly extension: Extension;
  backup(ctx: EngineContext<C>): Promise<BackupOutput>;
  restore(ctx: EngineContext<C>, request: RestoreRequest): Promise<Record<string, unknown>>;
  verify(ctx: EngineContext<C>, request: VerifyRequest): Promise<Record<string, unknown>>;
}

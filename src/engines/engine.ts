import type { ClientConfig, Config } from "../config/schema.ts";
import type { BaseExtension } from "../repository/keys.ts";
import type { ArtifactAccess } from "../pipeline/read.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import type { Scratch } from "../io/scratch.ts";
import type { Keys } from "../pipeline/identity.ts";

export interface ProgressUpdate {
  /** Left out: unchanged (an update that only learns the total). */
  bytes_done?: number;
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
  /**
   * This job's age keys: for a backup, the recipients its artifact is encrypted for
   * (none: not encrypted); for a restore or verify, this host's identities. Engines
   * that store bytes outside their artifact (the s3 mirror's objects) use them.
   */
  keys?: Keys;
  /** A backup's artifact key, fixed before the engine runs. */
  artifactKey?: string;
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
  /** The plain artifact; the pipeline transforms, hashes and stores it. */
  body: ReadableStream<Uint8Array>;
  /** Settles once the body has been fully read: the facts, or why the backup is bad. */
  facts: Promise<BackupFacts>;
  /** Releases temporary resources (child processes, scratch files) whatever happened. */
  cleanup?: () => Promise<void>;
}

/** How an engine reads the artifact: the plain artifact only (src/pipeline/read.ts). */
export type { ArtifactAccess, PlainFile } from "../pipeline/read.ts";

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
  /** The plain native format's extension; the pipeline chains its own suffixes after it. */
  readonly extension: BaseExtension;
  backup(ctx: EngineContext<C>): Promise<BackupOutput>;
  restore(ctx: EngineContext<C>, request: RestoreRequest): Promise<Record<string, unknown>>;
  verify(ctx: EngineContext<C>, request: VerifyRequest): Promise<Record<string, unknown>>;
  /**
   * Removes what killed restores of this client left outside the repository (a postgres
   * restore's fresh database), only where the process that made it is provably gone;
   * returns the names removed. The periodic sweep calls it (runtime/recover.ts).
   */
  sweepLeftovers?(client: C): Promise<string[]>;
}

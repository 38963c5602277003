import { dirname, join } from "node:path";
import { z } from "zod";
import { CLIENT_NAME } from "../repository/keys.ts";
import { credentialUrlProblem } from "./url_shape.ts";
import { NotificationsSchema } from "../notify/config.ts";
import { ConfigSchedulesSchema } from "./schedules.ts";

const nonEmpty = z.string().min(1, "must not be empty");

function urlWithScheme(schemes: string[]) {
  return nonEmpty.superRefine((v, ctx) => {
    // A password written unencoded would be split into host and path, and shown.
    const problem = credentialUrlProblem(v);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
      return;
    }
    let ok = false;
    try {
      ok = schemes.includes(new URL(v).protocol.replace(/:$/, ""));
    } catch { /* not a URL */ }
    if (!ok) {
      ctx.addIssue({
        code: "custom",
        message: `must be a URL starting with ${schemes.map((s) => s + "://").join(" or ")}`,
      });
    }
  });
}

const HostPort = nonEmpty.refine((v) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}, "must be host:port with a port up to 65535, for example 127.0.0.1:4052");

/** A duration such as 90m, 26h or 7d, as milliseconds. */
const Duration = z.string().regex(
  /^\d+(\.\d+)?(m|h|d)$/,
  "must be a duration such as 90m, 26h or 7d",
).transform((v) =>
  Number(v.slice(0, -1)) *
  { m: 60_000, h: 3_600_000, d: 86_400_000 }[v.slice(-1) as "m" | "h" | "d"]
);

/** Monitoring settings every client kind takes (issue 22). */
const clientCommon = {
  /**
   * A client whose newest successful backup is older than this is overdue (status and
   * the backup_overdue notification). Without it: twice its most frequent schedule's interval.
   */
  max_age: Duration.optional(),
  /** Overrides backup.stall_timeout_minutes for this client's jobs. */
  stall_timeout_minutes: z.number().positive().optional(),
};

/**
 * How artifacts are compressed (src/pipeline): set on the repository, overridable per
 * client. Levels: zstd 1-19, gzip 1-9; the default level is the algorithm's own.
 */
const Compression = {
  compression: z.enum(["zstd", "gzip", "none"]).optional(),
  compression_level: z.number().int().min(1).max(19).optional(),
};
function levelFits(v: object): boolean {
  const c = v as { compression?: string; compression_level?: number };
  return !(c.compression === "gzip" && (c.compression_level ?? 0) > 9);
}
const LEVEL_MESSAGE = {
  message: "gzip levels are 1-9 (zstd takes 1-19)",
  path: ["compression_level"],
};

/**
 * An age X25519 recipient: "age1" and 58 bech32 characters (age-encryption.org/v1).
 * A secret key pasted here by mistake is named as such and never repeated: a config
 * problem is printed, logged and stored in job records.
 */
export const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const AgeRecipient = z.string().superRefine((v, ctx) => {
  if (AGE_RECIPIENT.test(v)) return;
  ctx.addIssue({
    code: "custom",
    message: /^AGE-SECRET-KEY-/i.test(v.trim())
      ? "an age identity (secret key), not a recipient: list its public key (age-keygen -y) and keep the secret key out of this file"
      : "not an age X25519 recipient (age1 then 58 characters)",
  });
});

/** age encryption of every stored artifact (age-encryption.org/v1, X25519 recipients). */
const Encryption = z.strictObject({
  /** Public keys (`age1…`) new backups are encrypted for. */
  recipients: z.array(AgeRecipient).default([]),
  /** A file of recipients, one a line (`#` comments), as `age -R` reads. */
  recipients_file: nonEmpty.optional(),
  /** The private key file (`AGE-SECRET-KEY-1…`): only on hosts that restore or rehearse. */
  identity_file: nonEmpty.optional(),
}).refine(
  (e) => e.recipients.length > 0 || e.recipients_file !== undefined,
  "encryption needs recipients or a recipients_file",
);

const PostgresClient = z.strictObject({
  ...clientCommon,
  ...Compression,
  kind: z.literal("postgres"),
  url: urlWithScheme(["postgres", "postgresql"]),
  /**
   * The password, given apart from the url (any characters, no escaping): put into the
   * url at load. The url must then carry none itself.
   */
  password: z.string().min(1).optional(),
  /** The connection verify rehearsals use (a role that may create databases); default url. */
  verify_url: urlWithScheme(["postgres", "postgresql"]).optional(),
  /** The password of verify_url, given apart from it (as `password` for `url`). */
  verify_password: z.string().min(1).optional(),
});
const RedisClient = z.strictObject({
  ...clientCommon,
  ...Compression,
  kind: z.literal("redis"),
  url: urlWithScheme(["redis", "rediss"]).refine((v) => {
    try {
      return /^(\/\d*)?$/.test(new URL(v).pathname);
    } catch {
      return true; // not a URL: said once, by urlWithScheme
    }
  }, "the path of a Redis url is a database number, such as /2"),
  /** The password (AUTH), given apart from the url; see the postgres client's. */
  password: z.string().min(1).optional(),
  /**
   * Record the source's DEBUG DIGEST before and after the snapshot (when the server
   * allows DEBUG) for verifies to compare, when it holds at most this many keys:
   * DEBUG DIGEST hashes the whole dataset while the server waits. 0: never.
   */
  record_digest_max_keys: z.number().int().nonnegative().default(100_000),
});
const S3Client = z.strictObject({
  ...clientCommon,
  /** The listing's compression; mirrored objects are never compressed (stored_copy.ts). */
  ...Compression,
  kind: z.literal("s3"),
  endpoint: urlWithScheme(["http", "https"]),
  region: nonEmpty.default("us-east-1"),
  bucket: z.string().min(3, "bucket names have at least 3 characters"),
  prefixes: z.array(z.string()).default([]),
  access_key_id: nonEmpty,
  secret_access_key: nonEmpty,
  remove: z.boolean().default(false),
  concurrency: z.number().int().min(1).max(256).default(8),
  force_path_style: z.boolean().default(true),
  /**
   * A run whose listing no longer holds more than this percent of the previous run's
   * objects fails before it removes or marks anything; 100 turns the guard off.
   */
  max_delete_percent: z.number().min(0).max(100).default(50),
});
const DirectoryClient = z.strictObject({
  ...clientCommon,
  ...Compression,
  kind: z.literal("directory"),
  path: nonEmpty,
  /** GNU tar `--exclude` patterns (globs; a pattern without `/` matches a name at any depth). */
  exclude: z.array(
    z.string().min(1, "an exclude pattern cannot be empty").refine(
      (p) => !/[\0\n]/.test(p),
      "an exclude pattern cannot contain a NUL byte or a newline",
    ),
  ).default([]),
  /** GNU tar `--one-file-system`: do not descend into other mounted filesystems. */
  one_file_system: z.boolean().default(false),
});
const SqliteClient = z.strictObject({
  ...clientCommon,
  ...Compression,
  kind: z.literal("sqlite"),
  path: nonEmpty,
});

export const ClientSchema = z.discriminatedUnion("kind", [
  PostgresClient,
  RedisClient,
  S3Client,
  DirectoryClient,
  SqliteClient,
]).refine(levelFits, LEVEL_MESSAGE);
export type ClientConfig = z.infer<typeof ClientSchema>;
export type ClientKind = ClientConfig["kind"];

const FsRepository = z.strictObject({
  ...Compression,
  encryption: Encryption.optional(),
  kind: z.literal("fs"),
  path: nonEmpty.default("data/backups"),
});
const S3Repository = z.strictObject({
  ...Compression,
  encryption: Encryption.optional(),
  kind: z.literal("s3"),
  endpoint: urlWithScheme(["http", "https"]).optional(),
  region: nonEmpty.default("us-east-1"),
  bucket: z.string().min(3, "bucket names have at least 3 characters"),
  prefix: z.string().default(""),
  access_key_id: nonEmpty,
  secret_access_key: nonEmpty,
  force_path_style: z.boolean().default(true),
});

/** The shortest lease: three renewals of at least a second each fit in it. */
export const MIN_LEASE_TTL_MINUTES = 0.05;

export const ConfigSchema = z.strictObject({
  /**
   * cairn's scratch root (snapshot copies, passfiles): default `scratch` beside the
   * job store, see scratchRoot().
   */
  scratch_dir: nonEmpty.optional(),
  server: z.strictObject({
    listen: HostPort.default("127.0.0.1:4052"),
    admin_key: z.string().optional(),
    /** A bearer token that may read GET /metrics only (the admin key may too). */
    metrics_token: z.string().min(16, "must be at least 16 characters").optional(),
    max_body_bytes: z.number().int().positive().default(1048576),
  }).prefault({}),
  store: z.strictObject({
    kind: z.enum(["sqlite", "jsonl", "postgres"]).default("sqlite"),
    /**
     * sqlite/jsonl: the store file. postgres: a local directory of this node (its
     * scratch goes beside it), default `data/node`.
     */
    path: nonEmpty.optional(),
    /** postgres only: the database every node shares (its password is a secret). */
    url: urlWithScheme(["postgres", "postgresql"]).optional(),
  }).prefault({}).superRefine((s, ctx) => {
    if (s.kind === "postgres" && s.url === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["url"],
        message: "a postgres store needs url, for example postgres://cairn@db.example:5432/cairn",
      });
    }
    if (s.kind !== "postgres" && s.url !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["url"],
        message: `url is for kind: postgres; a ${s.kind} store is a file named by path`,
      });
    }
  }).transform((s) => ({
    kind: s.kind,
    path: s.path ??
      (s.kind === "sqlite"
        ? "data/cairn.db"
        : s.kind === "jsonl"
        ? "data/jobs.jsonl"
        : "data/node"),
    ...(s.url === undefined ? {} : { url: s.url }),
  })),
  repository: z.discriminatedUnion("kind", [FsRepository, S3Repository]).refine(
    levelFits,
    LEVEL_MESSAGE,
  ).prefault({ kind: "fs" }),
  /**
   * This daemon as one node of a shared (postgres) store: its name (default the
   * hostname) and the clients it can run (default every client of this config).
   */
  node: z.strictObject({
    name: z.string().regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
      "node names are 1-63 of A-Z, a-z, 0-9, ., _ and -, starting with a letter or digit",
    ).optional(),
    clients: z.array(z.string().min(1)).optional(),
  }).prefault({}),
  backup: z.strictObject({
    worker_enabled: z.boolean().default(true),
    worker_concurrency: z.number().int().min(1).max(64).default(2),
    execution_worker_poll_ms: z.number().int().positive().default(1500).transform((v) =>
      Math.max(v, 250)
    ),
    schedule_worker_poll_ms: z.number().int().positive().default(30000).transform((v) =>
      Math.max(v, 1000)
    ),
    worker_max_attempts: z.number().int().min(1).max(100).default(3),
    // The lease is renewed every TTL/3 (at most every 2 s, see runtime/lease.ts): below
    // 0.05 minutes (3 s) a busy event loop misses renewals and every job "loses its lease".
    worker_lease_ttl_minutes: z.number().min(
      MIN_LEASE_TTL_MINUTES,
      `must be at least ${MIN_LEASE_TTL_MINUTES} (3 s): the lease is renewed every TTL/3, so a shorter one expires between renewals`,
    ).max(24 * 60).default(15),
    /** How often the daemon removes what crashes left (orphan artifacts, scratch, .tmp). */
    sweep_interval_ms: z.number().int().min(1000).default(60_000),
    retry_backoff_ms: z.number().int().nonnegative().default(5000),
    /**
     * A running job whose progress has not moved for this long is aborted and retried
     * (the stall watchdog, checked at each lease renewal).
     */
    stall_timeout_minutes: z.number().positive().default(30),
  }).prefault({}),
  tools: z.strictObject({
    pg_dump: nonEmpty.default("pg_dump"),
    pg_restore: nonEmpty.default("pg_restore"),
    /** GNU tar for directory backups (checked to be GNU tar 1.30 or later). */
    tar: nonEmpty.default("tar"),
    /**
     * redis-server for Redis verifies (a scratch server loads the backup). Unset:
     * `redis-server` on PATH when there is one, else the parse alone.
     */
    redis_server: nonEmpty.optional(),
  }).prefault({}),
  clients: z.record(
    z.string().regex(CLIENT_NAME, "client names are 1-63 of a-z, 0-9, _ and -"),
    ClientSchema,
  ).default({}),
  /** Notification channels (src/notify/config.ts). */
  notifications: NotificationsSchema,
  /** Schedules owned by the config (src/config/schedules.ts), reconciled at daemon start. */
  schedules: ConfigSchedulesSchema,
}).superRefine((config, ctx) => {
  config.schedules.forEach((s, i) => {
    if (!Object.hasOwn(config.clients, s.client)) {
      ctx.addIssue({
        code: "custom",
        path: ["schedules", i, "client"],
        message: `unknown client ${JSON.stringify(s.client)}: name one under clients:`,
      });
    }
  });
});

export type Config = z.infer<typeof ConfigSchema>;
export type RepositoryConfig = Config["repository"];

/** Where scratch files go: scratch_dir, else `scratch` in the job store's directory. */
export function scratchRoot(config: Pick<Config, "scratch_dir" | "store">): string {
  return config.scratch_dir ?? join(dirname(config.store.path), "scratch");
}

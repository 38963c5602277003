/**
 * Where backups live. Small on purpose, after restic's backend interface
 * (internal/backend: Save, Load with offset and length, Stat, List, Remove, plus
 * Properties): five storage verbs and a statement of what the backend can do
 * besides. Callers never learn whether bytes land on a disk or in a bucket; what a
 * backend does better than the verbs (a rename, one sync for a batch) is an optional
 * capability, and each capability's generic fallback is written once
 * (capabilities.ts), so a caller never branches on the backend.
 */
export interface PutResult {
  size: number;
  sha256: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** When the object was last written (epoch ms), where stat() knows it. */
  modified_at?: number;
}

/** A multipart upload that was started and neither completed nor aborted (S3). */
export interface UnfinishedUpload {
  /** The key it writes, relative to the repository (its prefix taken off). */
  key: string;
  upload_id: string;
  /** When it was initiated (epoch ms), as the server says; null when it does not. */
  initiated_at: number | null;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Called with the bytes stored so far, at most a few times a second. */
  onProgress?: (bytes: number) => void;
}

/** The byte range [start, end] of an object (end inclusive, as HTTP's Range); end open: to the last byte. */
export interface ByteRange {
  start: number;
  end?: number;
}

/**
 * Durability for many small objects at the price of one sync (a mirror's thousands
 * of copies): a put or move through it is visible at once but durable only once
 * sync() has returned. Until then a crash may leave the key absent, old, or holding
 * a partial file: record nothing that depends on it before that. Only a backend
 * whose plain puts each pay a sync (fsync of the file and its directory) offers it;
 * elsewhere a plain put is already durable when it returns (putBatched()).
 */
export interface BatchedDurability {
  put(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  /** As the move capability, durable only after sync(). */
  move(from: string, to: string): Promise<void>;
  /** As the link capability, durable only after sync(); present where that one is. */
  readonly link?: LinkObject;
  /**
   * Makes every earlier put and move of the batch durable: there is one batch per
   * repository, so this also covers other callers' writes. Calls queue behind each
   * other; once one failed, every later one fails (the kernel reports a lost write
   * once, so nothing after it can say which objects reached the disk).
   */
  sync(): Promise<void>;
}

/**
 * Leftovers of writes a killed process never finished, which the verbs cannot see
 * (an fs repository's `.tmp/*.part` files, an S3 bucket's incomplete multipart
 * uploads). A put that fails while cairn runs removes its own leftover.
 */
export interface PartialWrites {
  /**
   * Their names, sorted, for a report: `.tmp/<name>` on a disk, `<key> (incomplete
   * multipart upload)` in S3. Writes under way are listed too.
   */
  list(): Promise<string[]>;
  /**
   * Removes those older than `olderThanMs`, and at once those whose own name (an fs
   * part is named by its writer: io/process_id.ts ownerTag) `writerIsDead` says a
   * process that is gone was writing. Returns how many went.
   */
  sweep(
    olderThanMs: number,
    writerIsDead?: (names: string[]) => Promise<Set<string>>,
  ): Promise<number>;
  /**
   * The same leftovers in detail where they are multipart uploads (S3: key, upload
   * id, initiation time), which a check sorts into leftovers and uploads still being
   * written (check_uploads.ts). Fails when the server does not list them (some
   * S3-compatible servers do not).
   */
  unfinishedUploads?(): Promise<UnfinishedUpload[]>;
}

/**
 * Whether a link may go on, given the very bytes `to` would get (the object being
 * linked, pinned: whatever happens to `from` meanwhile, these are the bytes `to` gets).
 * Resolves false to leave `to` as it was. It may read the stream to its end or not.
 */
export type LinkCheck = (pinned: ReadableStream<Uint8Array>) => Promise<boolean>;

/**
 * Gives `to` the object `from` holds without storing its bytes again (a hard link),
 * atomically replacing what `to` held: from then on the two keys share the stored
 * bytes until either is replaced or removed, which only ever affects that key (a
 * backend that offers this never writes into a stored object in place: a put writes
 * a new one and renames it over the key). `check`, when given, sees the bytes first.
 * Resolves true once linked; false, leaving `to` as it was, when `from` is absent,
 * `check` said no, or this object cannot take another link here (a filesystem
 * without hard links, or the object at its link limit): the caller then keeps its
 * own copy.
 */
export type LinkObject = (from: string, to: string, check?: LinkCheck) => Promise<boolean>;

/** What a repository can do besides the verbs (restic's Properties); absent means "use the fallback". */
export interface RepositoryCapabilities {
  /**
   * Gives the object at `from` the key `to` (replacing what `to` held) without
   * reading it through cairn: a rename on a disk, a server-side copy then a delete in
   * S3. BACKUP_NOT_FOUND when `from` does not exist. Fallback: moveObject() copies
   * through cairn (get, put, remove).
   */
  readonly move?: (from: string, to: string) => Promise<void>;
  /** One sync for a batch of small objects; fallback: plain (durable) puts. */
  readonly batch?: BatchedDurability;
  /** Leftovers of interrupted writes; fallback: none can exist. */
  readonly partialWrites?: PartialWrites;
  /**
   * One stored object under two keys (dedup); fallback: none, each key stores its
   * own bytes (S3 has no links: a server-side copy stores the bytes again).
   */
  readonly link?: LinkObject;
  /**
   * A put that never replaces an object, atomically: OBJECT_EXISTS (a CairnError)
   * when `key` exists or appears while the body is stored; the existing object is
   * left as it was and this put's own temp file or multipart parts are removed.
   * Claimed only by a backend whose protocol keeps it (a disk: link(2) fails with
   * EEXIST; S3: `If-None-Match: *`). Where a backend finds at run time that its
   * storage does not (a filesystem without hard links, an S3 server that ignores the
   * header), it logs a warning once and does what the fallback does. Fallback:
   * putIfAbsent() in capabilities.ts, a stat before a plain put, which a writer
   * racing between the two can still lose to.
   */
  readonly putIfAbsent?: (
    key: string,
    body: ReadableStream<Uint8Array>,
    options?: PutOptions,
  ) => Promise<PutResult>;
}

export interface Repository {
  /**
   * The key layout the repository was written with (a mirror's names differ: a disk
   * cannot hold `photos` beside `photos/1.jpg`); also shown to operators.
   */
  readonly kind: "fs" | "s3";
  /** Where it is, for messages (never with credentials). */
  readonly location: string;
  readonly capabilities: RepositoryCapabilities;
  /** Streams `body` into `key`; the key appears only once every byte is durable. */
  put(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  /** Reads `key` as a stream, optionally only `range`. BACKUP_NOT_FOUND when it is absent. */
  get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>>;
  /** null when the key is absent. */
  stat(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with `prefix`, sorted by key. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removing a missing key is not an error. */
  remove(key: string): Promise<void>;
}

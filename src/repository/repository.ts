/**
 * Where backups live. Small on purpose (after restic's backend interface): the
 * callers never learn whether bytes land on a disk or in a bucket.
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
  /**
   * For batches of many small objects: the bytes and the new name are durable only
   * once syncDeferred() has returned (one sync for the batch instead of one per
   * object). Until then a crash may leave the key absent, old, or holding a partial
   * file: record nothing that depends on the object before that.
   */
  deferSync?: boolean;
}

export interface Repository {
  readonly kind: "fs" | "s3";
  /** Where it is, for messages (never with credentials). */
  readonly location: string;
  /** Streams `body` into `key`; the key appears only once every byte is durable. */
  put(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<PutResult>;
  /** Reads `key` as a stream, optionally the byte range [start, end]. */
  get(key: string, range?: { start: number; end?: number }): Promise<ReadableStream<Uint8Array>>;
  stat(key: string): Promise<ObjectInfo | null>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Makes earlier deferSync puts durable (a no-op where puts are atomic). */
  syncDeferred(): Promise<void>;
  /** Removing a missing key is not an error. */
  remove(key: string): Promise<void>;
  /**
   * Gives the object at `from` the key `to` (replacing what `to` held) without
   * reading it through cairn: a rename on a disk, a server-side copy then a delete in
   * S3. BACKUP_NOT_FOUND when `from` does not exist. With deferSync the rename is
   * durable only once syncDeferred() has returned.
   */
  move(from: string, to: string, options?: { deferSync?: boolean }): Promise<void>;
  /** Fails with a message naming the problem when the repository cannot be written. */
  checkWritable(): Promise<void>;
  /**
   * Removes leftovers of interrupted writes older than `olderThanMs`, and at once
   * those whose name `writerIsDead` says a process that is gone was writing.
   */
  cleanupPartial(
    olderThanMs: number,
    writerIsDead?: (names: string[]) => Promise<Set<string>>,
  ): Promise<number>;
  /**
   * The unfinished multipart uploads under the repository (S3 only: a disk has
   * none). Fails when the server does not list them (some S3-compatible servers).
   */
  unfinishedUploads?(): Promise<UnfinishedUpload[]>;
}

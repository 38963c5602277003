import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { RepositoryConfig } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import { contentHasher } from "../io/hashing.ts";
import { assertSafeKey } from "./paths.ts";
import { s3CairnError } from "../s3/errors.ts";
import { sdkClient } from "../s3/sdk.ts";
import { uploadStream } from "./s3_upload.ts";
import { objectExists, putIfAbsentByStat } from "./capabilities.ts";
import { logger } from "../log.ts";
import type {
  ByteRange,
  ObjectInfo,
  PutOptions,
  PutResult,
  Repository,
  RepositoryCapabilities,
  UnfinishedUpload,
} from "./repository.ts";

type S3Config = Extract<RepositoryConfig, { kind: "s3" }>;

/**
 * An upload holds QUEUE_SIZE + 1 part buffers (s3_upload.ts), so memory is
 * PART_SIZE x (QUEUE_SIZE + 1) whatever the artifact size. 10 MiB x 10,000 parts
 * (S3's limit) allows ~97 GiB.
 */
export const PART_SIZE = 10 * 1024 * 1024;
export const QUEUE_SIZE = 2;

/**
 * How old an unfinished multipart upload must be before cairn takes it for a
 * leftover (the sweep aborts it, the check reports it): 24 hours. An upload's
 * initiation time is when its backup started writing, however long ago that was, so
 * the lease TTL cannot tell a live upload from a dead one; no artifact takes this
 * long: at most ~97 GiB (10,000 parts of PART_SIZE), 13.5 h even at 2 MB/s.
 */
export const LIVE_UPLOAD_MS = 24 * 60 * 60_000;

/**
 * SDK failures as errors an operator can act on: the one S3 error mapping
 * (src/s3/errors.ts), shared with the mirror source. The SDK has already retried
 * transient failures (src/s3/retry.ts: S3_ATTEMPTS).
 */
export function s3Error(error: unknown, action: string, where: string): Error {
  return s3CairnError(error, "repository", action, where);
}

/**
 * S3's refusal of a conditional write: 412 PreconditionFailed when the key exists,
 * 409 ConditionalRequestConflict when another write to it was under way (AWS S3 User
 * Guide, "Conditional writes"). Both leave the object that is there as it was.
 */
export function isConditionRefused(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e?.$metadata?.httpStatusCode === 412 || e?.name === "PreconditionFailed" ||
    e?.Code === "PreconditionFailed" || e?.name === "ConditionalRequestConflict" ||
    e?.Code === "ConditionalRequestConflict";
}

/**
 * A repository in an S3-compatible bucket (AWS, MinIO, ...), under an optional key
 * prefix. An object exists whole or not at all once its PUT returns, so there is no
 * batch capability: every put is already durable. Capabilities: `move` (a
 * server-side copy then a delete), `partialWrites` (incomplete multipart uploads),
 * and `putIfAbsent` (`If-None-Match: *`). Servers that ignore If-None-Match on writes
 * exist (s3rver is one), and would replace the object
 * silently: the first putIfAbsent of a process finds out with a probe, and where the
 * header is ignored it falls back to putIfAbsentByStat() and says so in the log.
 */
export class S3Repository implements Repository {
  readonly kind = "s3" as const;
  readonly capabilities: RepositoryCapabilities = {
    move: (from, to) => this.#move(from, to),
    partialWrites: {
      list: () => this.#partialNames(),
      sweep: (olderThanMs) => this.#sweepPartial(olderThanMs),
      unfinishedUploads: () => this.#unfinishedUploads(),
    },
    putIfAbsent: (key, body, options) => this.#putIfAbsent(key, body, options),
  };
  /** Whether the server refuses a write with `If-None-Match: *` to an existing key. */
  #conditionalWrites: Promise<boolean> | null = null;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly location: string;

  constructor(config: S3Config) {
    this.#client = sdkClient(config);
    this.#bucket = config.bucket;
    this.#prefix = config.prefix ? config.prefix.replace(/^\/+/, "").replace(/\/*$/, "/") : "";
    this.location = `s3://${config.bucket}/${this.#prefix}` +
      (config.endpoint ? ` at ${config.endpoint}` : "");
  }

  #key(key: string): string {
    assertSafeKey(key);
    return this.#prefix + key;
  }

  put(key: string, body: ReadableStream<Uint8Array>, options?: PutOptions): Promise<PutResult> {
    return this.#put(key, body, options, false);
  }

  async #putIfAbsent(
    key: string,
    body: ReadableStream<Uint8Array>,
    options?: PutOptions,
  ): Promise<PutResult> {
    if (await this.#honoursConditionalWrites()) return await this.#put(key, body, options, true);
    return await putIfAbsentByStat(this, key, body, options);
  }

  /**
   * Probed once per process (and again after a probe that failed): a small object is
   * put, then put again with `If-None-Match: *`, which a server that honours the
   * header refuses with 412. A server that accepts it would replace objects that a
   * no-overwrite publish must leave alone.
   */
  #honoursConditionalWrites(): Promise<boolean> {
    this.#conditionalWrites ??= this.#probeConditionalWrites().catch((error) => {
      this.#conditionalWrites = null;
      throw error;
    });
    return this.#conditionalWrites;
  }

  async #probeConditionalWrites(): Promise<boolean> {
    const key = this.#key(`.cairn-probe-${crypto.randomUUID()}`);
    const put = (condition: { IfNoneMatch?: string }) =>
      this.#client.send(
        new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: "probe", ...condition }),
      );
    try {
      await put({});
      try {
        await put({ IfNoneMatch: "*" });
      } catch (error) {
        if (isConditionRefused(error)) return true;
        throw error;
      }
      logger.warn(
        "This S3 server ignores If-None-Match on writes: a worker that lost its lease could " +
          "replace a re-run's backup; a look before each publish narrows the window, it does " +
          "not close it",
        { repository: this.location },
      );
      return false;
    } catch (error) {
      throw s3Error(error, "probing conditional writes", this.location);
    } finally {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }))
        .catch(() => {});
    }
  }

  async #put(
    key: string,
    body: ReadableStream<Uint8Array>,
    options: PutOptions = {},
    ifAbsent: boolean,
  ): Promise<PutResult> {
    const hasher = contentHasher(options.onProgress);
    // Remember why the source failed: the SDK may report a later error (from
    // aborting the multipart upload) that would hide the real cause. The bytes are
    // hashed on the way through this wrapper rather than by another stream stage.
    let sourceError: unknown = null;
    const reader = body.getReader();
    const source = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else {
            hasher.update(value);
            controller.enqueue(value);
          }
        } catch (error) {
          sourceError = error;
          controller.error(error);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    try {
      await uploadStream(
        { client: this.#client, bucket: this.#bucket, key: this.#key(key) },
        source,
        {
          partSize: PART_SIZE,
          queueSize: QUEUE_SIZE,
          signal: options.signal,
          ifNoneMatch: ifAbsent,
        },
      );
      return hasher.result();
    } catch (error) {
      reader.cancel().catch(() => {});
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      if (sourceError) throw sourceError;
      if (ifAbsent && isConditionRefused(error)) throw objectExists(key);
      throw s3Error(error, `writing ${key}`, this.location);
    }
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    try {
      const out = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(key),
          Range: range ? `bytes=${range.start}-${range.end ?? ""}` : undefined,
        }),
      );
      return out.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (error) {
      const e = s3Error(error, `reading ${key}`, this.location);
      if (e instanceof CairnError && e.code === "BACKUP_NOT_FOUND") {
        throw new CairnError("BACKUP_NOT_FOUND", `Not found in the repository: ${key}`);
      }
      throw e;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }),
      );
      return {
        key,
        size: out.ContentLength ?? 0,
        ...(out.LastModified ? { modified_at: out.LastModified.getTime() } : {}),
      };
    } catch (error) {
      const e = s3Error(error, `reading ${key}`, this.location);
      if (e instanceof CairnError && e.code === "BACKUP_NOT_FOUND") return null;
      throw e;
    }
  }

  /**
   * ListObjects (v1) paged by Marker, the last key seen: every S3 implementation
   * honours it, including servers whose v2 continuation tokens are broken (s3rver
   * under Deno cannot build them at all).
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let marker: string | undefined;
    for (;;) {
      let out;
      try {
        out = await this.#client.send(
          new ListObjectsCommand({
            Bucket: this.#bucket,
            Prefix: this.#prefix + prefix,
            Marker: marker,
          }),
        );
      } catch (error) {
        throw s3Error(error, `listing ${prefix || "/"}`, this.location);
      }
      const contents = out.Contents ?? [];
      yield* contents
        .filter((o) => o.Key && o.Key.startsWith(this.#prefix))
        .map((o) => ({ key: o.Key!.slice(this.#prefix.length), size: o.Size ?? 0 }));
      if (!out.IsTruncated || contents.length === 0) return;
      marker = contents[contents.length - 1].Key;
    }
  }

  async remove(key: string): Promise<void> {
    try {
      await this.#client.send(
        new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }),
      );
    } catch (error) {
      const e = s3Error(error, `deleting ${key}`, this.location);
      if (e instanceof CairnError && e.code === "BACKUP_NOT_FOUND") return;
      throw e;
    }
  }

  /**
   * CopyObject then DeleteObject. CopyObject takes objects up to 5 GiB (S3 API
   * reference, CopyObject); a larger one fails here and the caller copies it again
   * from where it came from.
   */
  async #move(from: string, to: string): Promise<void> {
    const source = this.#key(from);
    try {
      await this.#client.send(
        new CopyObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(to),
          // "bucket/key", URL-encoded (S3 API reference, CopyObject x-amz-copy-source).
          CopySource: `${this.#bucket}/${encodeURIComponent(source).replace(/%2F/g, "/")}`,
        }),
      );
    } catch (error) {
      const e = s3Error(error, `moving ${from} to ${to}`, this.location);
      if (e instanceof CairnError && e.code === "BACKUP_NOT_FOUND") {
        throw new CairnError("BACKUP_NOT_FOUND", `Not found in the repository: ${from}`);
      }
      throw e;
    }
    await this.remove(from);
  }

  /**
   * ListMultipartUploads under our prefix, every page (KeyMarker and
   * UploadIdMarker: AWS S3 API reference, ListMultipartUploads). Fails when the
   * server does not list uploads (s3rver 3.7.1 answers NotImplemented).
   */
  async #unfinishedUploads(): Promise<UnfinishedUpload[]> {
    const out: UnfinishedUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.#bucket,
            Prefix: this.#prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (error) {
        throw s3Error(error, "listing unfinished multipart uploads", this.location);
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(this.#prefix)) continue;
        out.push({
          key: u.Key.slice(this.#prefix.length),
          upload_id: u.UploadId,
          initiated_at: u.Initiated ? u.Initiated.getTime() : null,
        });
      }
      if (!page.IsTruncated || (!page.NextKeyMarker && !page.NextUploadIdMarker)) return out;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /**
   * Incomplete multipart uploads, named by the key (under our prefix) each was
   * writing; none where the server does not list them.
   */
  async #partialNames(): Promise<string[]> {
    const uploads = await this.#unfinishedUploads().catch(() => []);
    return uploads.map((u) => u.key).sort().map((key) => `${key} (incomplete multipart upload)`);
  }

  /**
   * Aborts multipart uploads under our prefix that a killed process left behind:
   * those older than `olderThanMs` and than LIVE_UPLOAD_MS (an upload names no
   * writer, so only age tells; a backup that runs for hours has an upload as old,
   * and aborting it would fail the backup).
   */
  async #sweepPartial(olderThanMs: number): Promise<number> {
    let aborted = 0;
    const limit = Math.max(olderThanMs, LIVE_UPLOAD_MS);
    try {
      for (const u of await this.#unfinishedUploads()) {
        if (u.initiated_at !== null && Date.now() - u.initiated_at > limit) {
          await this.#client.send(
            new AbortMultipartUploadCommand({
              Bucket: this.#bucket,
              Key: this.#prefix + u.key,
              UploadId: u.upload_id,
            }),
          );
          aborted++;
        }
      }
    } catch { /* an abort the server refuses: the bucket's lifecycle rules clean up */ }
    return aborted;
  }
}

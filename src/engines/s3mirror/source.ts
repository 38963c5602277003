import { Readable } from "node:stream";
import type { Client as MinioClient } from "minio";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { unseen } from "../../lazy.ts";
import { classifyS3, s3CairnError } from "../../s3/errors.ts";
import { minioClient } from "../../s3/minio.ts";
import { withRetry } from "../../s3/retry.ts";
import { normalizeEtag } from "./keys.ts";
import type { RestoreUploader } from "./restore_upload.ts";

type S3ClientConfig = Extract<ClientConfig, { kind: "s3" }>;

export interface SourceObject {
  key: string;
  size: number;
  etag: string;
  last_modified: string | null;
}

/** Source-side failures as actionable errors (credentials, missing bucket, unreachable). */
export function sourceError(error: unknown, action: string, where: string): Error {
  return s3CairnError(error, "source", action, where);
}

interface ListPage {
  objects: SourceObject[];
  truncated: boolean;
}

/**
 * The S3/MinIO bucket a client mirrors from (and restores into), through the `minio`
 * package. Every call goes through the one S3 retry policy (src/s3/retry.ts) and the
 * one error mapping (src/s3/errors.ts).
 *
 * Keys are sent as written: minio builds the request path itself and sends it with
 * node:http, so `a/../b` asks for the object `a/../b` (fetch() would resolve it to
 * `b`, another object). minio asks for `encoding-type=url` listings and decodes
 * each key, so keys with `%`, `+`, spaces or control characters list as they are.
 */
export class S3Source {
  readonly bucket: string;
  readonly where: string;
  readonly #config: S3ClientConfig;
  readonly #client: MinioClient;
  readonly #sleep?: (ms: number) => Promise<void>;
  #uploader: Promise<RestoreUploader> | null = null;

  /** `sleep` replaces the wait between retries (tests). */
  constructor(config: S3ClientConfig, sleep?: (ms: number) => Promise<void>) {
    this.#config = config;
    this.#client = minioClient(config);
    this.#sleep = sleep;
    this.bucket = config.bucket;
    this.where = this.#at(config.bucket);
  }

  #at(bucket: string): string {
    return `s3://${bucket} at ${this.#config.endpoint}`;
  }

  #retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(call, { signal, sleep: this.#sleep });
  }

  async checkBucket(bucket = this.bucket): Promise<void> {
    let exists: boolean;
    try {
      exists = await this.#retry(() => this.#client.bucketExists(bucket));
    } catch (error) {
      throw sourceError(error, "checking the bucket", this.#at(bucket));
    }
    // A HEAD on a missing bucket carries no body to name it: a bare 404 says so.
    if (!exists) {
      throw new CairnError("SOURCE_REFUSED", `The bucket of ${this.#at(bucket)} does not exist`);
    }
  }

  /**
   * Every object under a prefix, paged by marker (ListObjects V1: every S3
   * implementation has it). The next page is requested as soon as a page arrives, so
   * a consumer that copies while it lists never waits for the server between pages.
   */
  async *list(prefix: string, bucket = this.bucket): AsyncGenerator<SourceObject> {
    const fetchPage = async (marker: string): Promise<ListPage> => {
      try {
        const page = await this.#retry(() =>
          this.#client.listObjectsQuery(bucket, prefix, marker, { Delimiter: "", MaxKeys: 1000 })
        );
        return {
          truncated: Boolean(page.isTruncated),
          objects: (page.objects as Array<Record<string, unknown>>)
            .filter((o) => typeof o.name === "string")
            .map((o) => ({
              key: o.name as string,
              size: Number(o.size),
              etag: normalizeEtag(o.etag as string | undefined),
              last_modified: o.lastModified instanceof Date && !isNaN(o.lastModified.getTime())
                ? o.lastModified.toISOString()
                : null,
            })),
        };
      } catch (error) {
        throw sourceError(error, `listing ${prefix || "the bucket"}`, this.#at(bucket));
      }
    };
    let next: Promise<ListPage> | null = fetchPage("");
    while (next) {
      const page: ListPage = await next;
      // Without a delimiter S3 sends no NextMarker: the last key is the marker.
      next = page.truncated && page.objects.length > 0
        ? fetchPage(page.objects[page.objects.length - 1].key)
        : null;
      // A consumer that stops early never awaits the page fetched ahead.
      next?.catch(() => {});
      yield* page.objects;
    }
  }

  /** The body with the ETag and size of exactly the version returned. */
  async get(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ body: ReadableStream<Uint8Array>; etag: string; size: number | null }> {
    let response: Readable & { headers?: Record<string, string | undefined> };
    try {
      response = await this.#retry(() => this.#client.getObject(this.bucket, key), signal);
    } catch (error) {
      throw sourceError(error, `reading ${key}`, this.where);
    }
    if (signal) {
      const stop = () =>
        response.destroy(signal.reason ?? new DOMException("Aborted", "AbortError"));
      if (signal.aborted) stop();
      else signal.addEventListener("abort", stop, { once: true });
      response.once("close", () => signal.removeEventListener("abort", stop));
    }
    const headers = response.headers ?? {};
    const length = headers["content-length"];
    return {
      // Pulled chunk by chunk: the socket is read only as fast as the copy writes.
      body: ReadableStream.from(response as AsyncIterable<Uint8Array>),
      etag: normalizeEtag(headers["etag"]),
      // A proxy may re-chunk the body and drop the length; then nothing to compare.
      size: length === undefined ? null : Number(length),
    };
  }

  async head(key: string): Promise<{ etag: string; size: number } | null> {
    try {
      const stat = await this.#retry(() => this.#client.statObject(this.bucket, key));
      return { etag: normalizeEtag(stat.etag), size: stat.size };
    } catch (error) {
      if (classifyS3(error).kind === "not-found") return null;
      throw sourceError(error, `reading ${key}`, this.where);
    }
  }

  /** Uploads (restores only) load the SDK on first use. */
  async put(
    bucket: string,
    key: string,
    body: ReadableStream<Uint8Array>,
    options: { size: number; signal?: AbortSignal },
  ): Promise<void> {
    this.#uploader ??= (import(unseen("./restore_upload.ts")) as Promise<
      typeof import("./restore_upload.ts")
    >).then(({ RestoreUploader }) => new RestoreUploader(this.#config));
    const uploader = await this.#uploader;
    try {
      await uploader.put(bucket, key, body, options);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      throw sourceError(error, `writing ${key}`, `s3://${bucket}`);
    }
  }
}

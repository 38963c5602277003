import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { unseen } from "../../lazy.ts";
import { classifyS3 } from "../../repository/s3_errors.ts";
import { normalizeEtag } from "./keys.ts";
import type { RestoreUploader } from "./restore_upload.ts";
import { S3Http } from "./s3_http.ts";
import { type ListPage, parseListPage } from "./s3_xml.ts";

type S3ClientConfig = Extract<ClientConfig, { kind: "s3" }>;

export interface SourceObject {
  key: string;
  size: number;
  etag: string;
  last_modified: string | null;
}

/** Source-side failures as actionable errors (credentials, missing bucket, unreachable). */
export function sourceError(error: unknown, action: string, where: string): Error {
  if (error instanceof CairnError) return error;
  const failure = classifyS3(error);
  switch (failure.kind) {
    case "aborted":
      return error as Error;
    case "auth":
      return new CairnError(
        "SOURCE_REFUSED",
        `${where} refused the request while ${action} (${failure.label}): check access_key_id and secret_access_key`,
        { cause: error },
      );
    case "no-bucket":
      return new CairnError("SOURCE_REFUSED", `The bucket of ${where} does not exist`, {
        cause: error,
      });
    case "not-found":
      return new CairnError("SOURCE_UNAVAILABLE", `Object not found while ${action} at ${where}`, {
        cause: error,
      });
    case "other":
      return new CairnError(
        "SOURCE_UNAVAILABLE",
        `${where} failed while ${action}: ${failure.detail}`,
        { cause: error },
      );
  }
}

/** The S3/MinIO bucket a client mirrors from (and restores into). */
export class S3Source {
  readonly bucket: string;
  readonly where: string;
  readonly #config: S3ClientConfig;
  readonly #http: S3Http;
  #uploader: Promise<RestoreUploader> | null = null;

  constructor(config: S3ClientConfig) {
    this.#config = config;
    this.#http = new S3Http({
      endpoint: config.endpoint,
      region: config.region,
      accessKeyId: config.access_key_id,
      secretAccessKey: config.secret_access_key,
      forcePathStyle: config.force_path_style,
    });
    this.bucket = config.bucket;
    this.where = this.#at(config.bucket);
  }

  #at(bucket: string): string {
    return `s3://${bucket} at ${this.#config.endpoint}`;
  }

  async checkBucket(bucket = this.bucket): Promise<void> {
    try {
      await (await this.#http.request("HEAD", bucket, "")).body?.cancel();
    } catch (error) {
      // A HEAD on a missing bucket carries no body to name it: a bare 404 says so.
      if (classifyS3(error).kind === "not-found") {
        throw new CairnError("SOURCE_REFUSED", `The bucket of ${this.#at(bucket)} does not exist`, {
          cause: error,
        });
      }
      throw sourceError(error, "checking the bucket", this.#at(bucket));
    }
  }

  /**
   * Every object under a prefix, paged by marker (works on every S3 implementation).
   * The next page is requested as soon as a page arrives, so a consumer that copies
   * while it lists never waits for the server between pages.
   */
  async *list(prefix: string, bucket = this.bucket): AsyncGenerator<SourceObject> {
    const fetchPage = async (marker?: string): Promise<ListPage> => {
      try {
        const response = await this.#http.request("GET", bucket, "", { prefix, marker });
        return parseListPage(await response.text());
      } catch (error) {
        throw sourceError(error, `listing ${prefix || "the bucket"}`, this.#at(bucket));
      }
    };
    let next: Promise<ListPage> | null = fetchPage();
    while (next) {
      const page: ListPage = await next;
      next = page.isTruncated && page.objects.length > 0
        ? fetchPage(page.nextMarker ?? page.objects[page.objects.length - 1].key)
        : null;
      // A consumer that stops early never awaits the page fetched ahead.
      next?.catch(() => {});
      for (const o of page.objects) {
        yield { key: o.key, size: o.size, etag: o.etag, last_modified: o.lastModified };
      }
    }
  }

  /** The body with the ETag and size of exactly the version returned. */
  async get(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ body: ReadableStream<Uint8Array>; etag: string; size: number | null }> {
    try {
      const response = await this.#http.request("GET", this.bucket, key, {}, signal);
      const length = response.headers.get("content-length");
      return {
        body: response.body ?? new Blob([]).stream(),
        etag: normalizeEtag(response.headers.get("etag") ?? undefined),
        // A proxy may re-chunk the body and drop the length; then nothing to compare.
        size: length === null ? null : Number(length),
      };
    } catch (error) {
      throw sourceError(error, `reading ${key}`, this.where);
    }
  }

  async head(key: string): Promise<{ etag: string; size: number } | null> {
    try {
      const response = await this.#http.request("HEAD", this.bucket, key);
      await response.body?.cancel();
      return {
        etag: normalizeEtag(response.headers.get("etag") ?? undefined),
        size: Number(response.headers.get("content-length") ?? 0),
      };
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

import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { classifyS3 } from "../../repository/s3_errors.ts";
import { normalizeEtag } from "./keys.ts";

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
      return action.startsWith("checking the bucket")
        ? new CairnError("SOURCE_REFUSED", `The bucket of ${where} does not exist`, {
          cause: error,
        })
        : new CairnError("SOURCE_UNAVAILABLE", `Object not found while ${action} at ${where}`, {
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
  readonly client: S3Client;
  readonly bucket: string;
  readonly where: string;

  constructor(config: S3ClientConfig) {
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.force_path_style,
      credentials: { accessKeyId: config.access_key_id, secretAccessKey: config.secret_access_key },
      maxAttempts: 5,
    });
    this.bucket = config.bucket;
    this.where = `s3://${config.bucket} at ${config.endpoint}`;
  }

  async checkBucket(bucket = this.bucket): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (error) {
      throw sourceError(error, "checking the bucket", `s3://${bucket}`);
    }
  }

  /** Every object under a prefix, paged by marker (works on every S3 implementation). */
  async *list(prefix: string, bucket = this.bucket): AsyncGenerator<SourceObject> {
    let marker: string | undefined;
    for (;;) {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }),
        );
      } catch (error) {
        throw sourceError(error, `listing ${prefix || "the bucket"}`, `s3://${bucket}`);
      }
      const contents = out.Contents ?? [];
      for (const o of contents) {
        if (!o.Key) continue;
        yield {
          key: o.Key,
          size: o.Size ?? 0,
          etag: normalizeEtag(o.ETag),
          last_modified: o.LastModified?.toISOString() ?? null,
        };
      }
      if (!out.IsTruncated || contents.length === 0) return;
      marker = contents[contents.length - 1].Key;
    }
  }

  /** The body with the ETag and size of exactly the version returned. */
  async get(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ body: ReadableStream<Uint8Array>; etag: string; size: number }> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      return {
        body: out.Body!.transformToWebStream() as ReadableStream<Uint8Array>,
        etag: normalizeEtag(out.ETag),
        size: out.ContentLength ?? 0,
      };
    } catch (error) {
      throw sourceError(error, `reading ${key}`, this.where);
    }
  }

  async head(key: string): Promise<{ etag: string; size: number } | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { etag: normalizeEtag(out.ETag), size: out.ContentLength ?? 0 };
    } catch (error) {
      const e = sourceError(error, `reading ${key}`, this.where);
      if (
        e instanceof CairnError && e.code === "SOURCE_UNAVAILABLE" && /not found/i.test(e.message)
      ) return null;
      throw e;
    }
  }

  async put(
    bucket: string,
    key: string,
    body: ReadableStream<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: body },
      partSize: 10 * 1024 * 1024,
      queueSize: 2,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await upload.done();
    } catch (error) {
      throw sourceError(error, `writing ${key}`, `s3://${bucket}`);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

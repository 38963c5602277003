import type { S3Client } from "@aws-sdk/client-s3";
import type { ClientConfig } from "../../config/schema.ts";
import { MAX_PARTS, uploadStream } from "../../repository/s3_upload.ts";
import { sdkClient } from "../../s3/sdk.ts";

const MiB = 1024 * 1024;
const PART_SIZE = 10 * MiB;

type S3ClientConfig = Extract<ClientConfig, { kind: "s3" }>;

/**
 * Writes into a mirror client's S3 (restores only), through the SDK and the
 * repository's streaming upload. Kept apart from the source's reads so that a
 * mirror backup never loads the SDK.
 */
export class RestoreUploader {
  readonly #client: S3Client;

  constructor(config: S3ClientConfig) {
    this.#client = sdkClient(config);
  }

  /**
   * One part in flight per object: a restore already runs `concurrency` objects at
   * once, and each upload holds (queue + 1) parts. Parts grow with the object, so
   * the largest S3 allows (5 TiB) fits in 10,000.
   */
  put(
    bucket: string,
    key: string,
    body: ReadableStream<Uint8Array>,
    options: { size: number; signal?: AbortSignal },
  ): Promise<void> {
    const partSize = Math.max(PART_SIZE, Math.ceil(options.size / MAX_PARTS / MiB) * MiB);
    return uploadStream({ client: this.#client, bucket, key }, body, {
      partSize,
      queueSize: 1,
      signal: options.signal,
    });
  }
}

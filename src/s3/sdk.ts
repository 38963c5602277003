import { S3Client } from "@aws-sdk/client-s3";
import { S3_ATTEMPTS } from "./retry.ts";

/** What an AWS SDK client needs: the repository's or a mirror client's S3 settings. */
export interface SdkEndpoint {
  endpoint?: string;
  region: string;
  access_key_id: string;
  secret_access_key: string;
  force_path_style: boolean;
}

/**
 * An AWS SDK S3 client with cairn's one retry policy (src/s3/retry.ts: S3_ATTEMPTS,
 * the SDK's "standard" mode retrying the same transient classes inside each call).
 */
export function sdkClient(config: SdkEndpoint): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.force_path_style,
    credentials: { accessKeyId: config.access_key_id, secretAccessKey: config.secret_access_key },
    maxAttempts: S3_ATTEMPTS,
    retryMode: "standard",
  });
}

import { Client as MinioClient } from "minio";
import { CairnError } from "../errors.ts";

/** What a `minio` client needs from a mirror client's config. */
export interface MinioEndpoint {
  endpoint: string;
  region: string;
  access_key_id: string;
  secret_access_key: string;
  force_path_style: boolean;
}

/**
 * The `minio` client for an endpoint URL (minio takes host, port and TLS apart).
 * An endpoint with a path is refused: minio addresses buckets at the root only.
 */
export function minioClient(config: MinioEndpoint): MinioClient {
  const url = new URL(config.endpoint);
  if (url.pathname !== "/" && url.pathname !== "") {
    throw new CairnError(
      "VALIDATION_FAILED",
      `The endpoint ${url.origin}${url.pathname} has a path; give the server's root URL (${url.origin})`,
    );
  }
  const useSSL = url.protocol === "https:";
  return new MinioClient({
    endPoint: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: config.access_key_id,
    secretKey: config.secret_access_key,
    region: config.region,
    pathStyle: config.force_path_style,
    // Retries are cairn's one policy (src/s3/retry.ts), not minio's own (which also
    // hides S3's error code behind "Request failed after N retries").
    retryOptions: { disableRetry: true },
  });
}

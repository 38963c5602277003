import type { RepositoryConfig } from "../config/schema.ts";
import { unseen } from "../lazy.ts";
import { FsRepository } from "./fs.ts";
import type { Repository } from "./repository.ts";

/**
 * The AWS SDK is loaded only for an S3 repository: it costs about 90 ms and 30 MiB
 * at start-up, which every fs-repository run (and the daemon's start) would pay.
 */
export async function openRepository(config: RepositoryConfig): Promise<Repository> {
  if (config.kind === "fs") return new FsRepository(config.path);
  const { S3Repository } = await import(unseen("./s3.ts")) as typeof import("./s3.ts");
  return new S3Repository(config);
}

import type { RepositoryConfig } from "../config/schema.ts";
import { FsRepository } from "./fs.ts";
import type { Repository } from "./repository.ts";
import { S3Repository } from "./s3.ts";

export function openRepository(config: RepositoryConfig): Repository {
  return config.kind === "fs" ? new FsRepository(config.path) : new S3Repository(config);
}

import type { RepositoryConfig } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import { FsRepository } from "./fs.ts";
import type { Repository } from "./repository.ts";

export function openRepository(config: RepositoryConfig): Repository {
  if (config.kind === "fs") return new FsRepository(config.path);
  throw new CairnError(
    "REPOSITORY_UNAVAILABLE",
    "repository.kind s3 is not available in this build yet: use repository.kind fs",
  );
}

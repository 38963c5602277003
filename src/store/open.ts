import type { Config } from "../config/schema.ts";
import type { BaseOptions } from "./base.ts";
import { JsonlStore } from "./jsonl.ts";
import { PostgresStore } from "./postgres.ts";
import { SqliteStore } from "./sqlite.ts";
import type { JobStore } from "./store.ts";

export function openStore(config: Config["store"], options: BaseOptions = {}): Promise<JobStore> {
  switch (config.kind) {
    case "sqlite":
      return SqliteStore.open(config.path, options);
    case "jsonl":
      return JsonlStore.open(config.path, options);
    case "postgres":
      return PostgresStore.open(config.url!, options);
  }
}

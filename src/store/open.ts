import type { Config } from "../config/schema.ts";
import type { BaseOptions } from "./base.ts";
import { JsonlStore } from "./jsonl.ts";
import { SqliteStore } from "./sqlite.ts";
import type { JobStore } from "./store.ts";

export function openStore(config: Config["store"], options: BaseOptions = {}): Promise<JobStore> {
  return config.kind === "sqlite"
    ? SqliteStore.open(config.path, options)
    : JsonlStore.open(config.path, options);
}

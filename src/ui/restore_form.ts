import type { ClientConfig } from "../config/schema.ts";
import { redactClient } from "../config/redacted.ts";
import { redactUrl } from "../redact.ts";

/** What a restore form offers for a client's kind. */
export interface RestoreOptions {
  targetLabel: string;
  targetHint: string;
  /** "replace" for files, databases and buckets; "flush" for Redis. */
  overwriteFlag: "replace" | "flush";
  overwriteLabel: string;
  postgres: boolean;
}

export function restoreOptions(kind: ClientConfig["kind"]): RestoreOptions {
  switch (kind) {
    case "directory":
      return {
        targetLabel: "Target directory",
        targetHint: "an absolute path; empty restores over the client's own directory",
        overwriteFlag: "replace",
        overwriteLabel: "Replace the target's contents if it is not empty",
        postgres: false,
      };
    case "sqlite":
      return {
        targetLabel: "Target database file",
        targetHint: "an absolute path; empty restores over the client's own file",
        overwriteFlag: "replace",
        overwriteLabel: "Replace the target file if it exists",
        postgres: false,
      };
    case "postgres":
      return {
        targetLabel: "Target database URL",
        targetHint: "postgres://user@host:port/db; empty restores over the client's own database",
        overwriteFlag: "replace",
        overwriteLabel: "Replace the target database if it exists",
        postgres: true,
      };
    case "redis":
      return {
        targetLabel: "Target Redis URL",
        targetHint: "redis://host:port/db; empty restores into the client's own Redis",
        overwriteFlag: "flush",
        overwriteLabel: "Flush the target database first",
        postgres: false,
      };
    case "s3":
      return {
        targetLabel: "Target bucket",
        targetHint: "s3://bucket/prefix; empty restores into the client's own bucket",
        overwriteFlag: "replace",
        overwriteLabel: "Replace objects that already exist",
        postgres: false,
      };
  }
}

/**
 * What a restore will overwrite, named for the confirmation: the target given (a URL
 * with its password masked) or, with none, the client's own source, redacted as the API
 * shows it.
 */
export function replacedDescription(client: ClientConfig, target: string | undefined): string {
  if (target) return /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? redactUrl(target) : target;
  const shown = redactClient(client);
  switch (client.kind) {
    case "directory":
      return `the client's own directory ${shown.path}`;
    case "sqlite":
      return `the client's own database file ${shown.path}`;
    case "postgres":
      return `the client's own database ${shown.url}`;
    case "redis":
      return `the client's own Redis ${shown.url}`;
    case "s3":
      return `the client's own bucket ${shown.bucket}`;
  }
}

/** "public.users\n orders" -> ["public.users", "orders"]: one table per line or comma. */
export function parseTables(text: string): string[] {
  return text.split(/[\n,]/).map((t) => t.trim()).filter((t) => t !== "");
}

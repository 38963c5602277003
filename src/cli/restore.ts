import { parseKey } from "../repository/keys.ts";
import { readManifest } from "../repository/manifest.ts";
import { requireClient } from "../runtime/services.ts";
import { parseTableName } from "../engines/postgres/toc.ts";
import { preflightRestore } from "../runtime/restore_preflight.ts";
import { sealTarget } from "../runtime/target_secrets.ts";
import { parseFlags, UsageError } from "./args.ts";
import { formatDuration } from "./output.ts";
import { runJobCommand } from "./run_job.ts";

export function restoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    client: { type: "string" },
    target: { type: "string" },
    yes: { type: "boolean" },
    flush: { type: "boolean" },
    table: { type: "string", multiple: true },
    "no-owner": { type: "boolean" },
    "keep-old": { type: "boolean" },
    json: { type: "boolean" },
  }, { min: 1, max: 1, names: ["KEY"] });
  const key = positionals[0];
  parseKey(key);
  const tables = (values.table as string[] | undefined) ?? [];
  for (const name of tables) {
    try {
      parseTableName(name);
    } catch (error) {
      throw new UsageError(`Invalid --table: ${(error as Error).message}`);
    }
  }
  return runJobCommand(
    "restore",
    { config: values.config as string | undefined, json: values.json as boolean | undefined },
    async (services) => {
      const manifest = await readManifest(services.repository, key);
      const client = (values.client as string | undefined) ?? manifest.client_name;
      const config = requireClient(services.config, client);
      if (
        config.kind !== "postgres" && (tables.length || values["no-owner"] || values["keep-old"])
      ) {
        throw new UsageError(
          `--table, --no-owner and --keep-old apply only to PostgreSQL; client ${client} is of kind ${config.kind}`,
        );
      }
      // A usage mistake (wrong target shape, occupied target) is exit 2, never a job.
      await preflightRestore({
        clientName: client,
        client: config,
        manifest,
        target: (values.target as string | undefined) ?? null,
        replace: values.yes === true,
        flush: values.flush === true,
        tables,
        encryption: services.config.repository.encryption,
      }, "cli");
      return {
        kind: "restore",
        client_name: client,
        key,
        max_attempts: services.config.backup.worker_max_attempts,
        params: {
          // A password in the target stays in this process's memory, never in the store.
          ...sealTarget(values.target as string | undefined),
          replace: values.yes === true,
          ...(values.flush ? { flush: true } : {}),
          ...(tables.length ? { tables } : {}),
          ...(values["no-owner"] ? { no_owner: true } : {}),
          ...(values["keep-old"] ? { keep_old: true } : {}),
        },
      };
    },
    (job) => {
      const r = job.result as { target?: string; duration_ms: number };
      return `Restore completed: ${job.key} -> ${r.target ?? job.client_name}, took ${
        formatDuration(r.duration_ms)
      } (job ${job.id})`;
    },
  );
}

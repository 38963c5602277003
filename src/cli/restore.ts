import { parseKey } from "../repository/keys.ts";
import { readManifest } from "../repository/manifest.ts";
import { requireClient } from "../runtime/services.ts";
import { parseFlags } from "./args.ts";
import { formatDuration } from "./output.ts";
import { runJobCommand } from "./run_job.ts";

export function restoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    client: { type: "string" },
    target: { type: "string" },
    yes: { type: "boolean" },
    flush: { type: "boolean" },
    json: { type: "boolean" },
  }, { min: 1, max: 1, names: ["KEY"] });
  const key = positionals[0];
  parseKey(key);
  return runJobCommand(
    { config: values.config as string | undefined, json: values.json as boolean | undefined },
    async (services) => {
      const manifest = await readManifest(services.repository, key);
      const client = (values.client as string | undefined) ?? manifest.client_name;
      requireClient(services.config, client);
      return {
        kind: "restore",
        client_name: client,
        key,
        max_attempts: services.config.backup.worker_max_attempts,
        params: {
          ...(values.target ? { target: values.target as string } : {}),
          replace: values.yes === true,
          ...(values.flush ? { flush: true } : {}),
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

import { parseKey } from "../repository/keys.ts";
import { readManifest } from "../repository/manifest.ts";
import { parseFlags } from "./args.ts";
import { formatDuration } from "./output.ts";
import { runJobCommand } from "./run_job.ts";

export function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { json: { type: "boolean" } }, {
    min: 1,
    max: 1,
    names: ["KEY"],
  });
  const key = positionals[0];
  parseKey(key);
  return runJobCommand(
    "verify",
    { config: values.config as string | undefined, json: values.json as boolean | undefined },
    async (services) => {
      const manifest = await readManifest(services.repository, key);
      return {
        kind: "verify",
        client_name: manifest.client_name,
        key,
        max_attempts: services.config.backup.worker_max_attempts,
      };
    },
    (job) => {
      const r = job.result as { duration_ms: number; checks: unknown };
      return `Verified: ${job.key}\n  sha256 ok; content ${JSON.stringify(r.checks)}; took ${
        formatDuration(r.duration_ms)
      } (job ${job.id})`;
    },
  );
}

import { LABEL } from "../repository/keys.ts";
import { requireClient } from "../runtime/services.ts";
import { parseFlags, UsageError } from "./args.ts";
import { formatBytes, formatDuration } from "./output.ts";
import { runJobCommand } from "./run_job.ts";

export function backupCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    label: { type: "string" },
    force: { type: "boolean" },
    json: { type: "boolean" },
  }, {
    min: 1,
    max: 1,
    names: ["CLIENT"],
  });
  const label = (values.label as string | undefined) ?? "manual";
  if (!LABEL.test(label)) {
    throw new UsageError(`Invalid --label ${JSON.stringify(label)}: use 1-40 of a-z, 0-9, _ and -`);
  }
  return runJobCommand(
    "backup",
    { config: values.config as string | undefined, json: values.json as boolean | undefined },
    (services) => {
      requireClient(services.config, positionals[0]);
      return {
        kind: "backup",
        client_name: positionals[0],
        label,
        max_attempts: services.config.backup.worker_max_attempts,
        ...(values.force === true ? { params: { force: true } } : {}),
      };
    },
    (job) => {
      const r = job.result as {
        key: string;
        size_bytes: number;
        sha256: string;
        duration_ms: number;
      };
      return `Backup completed: ${r.key}\n  size ${
        formatBytes(r.size_bytes)
      }, sha256 ${r.sha256}, took ${formatDuration(r.duration_ms)} (job ${job.id})`;
    },
  );
}

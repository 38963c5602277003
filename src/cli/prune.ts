import { plural } from "../plural.ts";
import { requireClient } from "../runtime/services.ts";
import { parseFlags } from "./args.ts";
import { runJobCommand } from "./run_job.ts";
import type { MirrorGc, SchedulePlan } from "../runtime/prune.ts";
import { formatBytes } from "./output.ts";

export function pruneCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    client: { type: "string" },
    "dry-run": { type: "boolean" },
    json: { type: "boolean" },
  }, { min: 0, max: 0, names: [] });
  const dryRun = values["dry-run"] === true;
  return runJobCommand(
    "prune",
    { config: values.config as string | undefined, json: values.json as boolean | undefined },
    (services) => {
      const client = values.client as string | undefined;
      if (client) requireClient(services.config, client);
      return {
        kind: "prune",
        client_name: client ?? null,
        max_attempts: 1,
        params: { dry_run: dryRun },
      };
    },
    (job) => {
      const r = job.result as {
        removed: number;
        kept: number;
        schedules: SchedulePlan[];
        mirrors?: MirrorGc[];
      };
      const lines = [
        dryRun
          ? "Prune plan (dry run, nothing deleted):"
          : `Pruned ${plural(r.removed, "backup")}, kept ${r.kept}:`,
      ];
      for (const s of r.schedules) {
        lines.push(`schedule ${s.schedule_id} (${s.client_name}, ${s.timezone})`);
        for (const d of s.keep) lines.push(`  keep    ${d.key}  (${d.reasons.join(", ")})`);
        for (const d of s.remove) lines.push(`  ${dryRun ? "remove" : "removed"}  ${d.key}`);
      }
      for (const m of r.mirrors ?? []) {
        if (!m.versions && !m.runs.length) continue;
        lines.push(
          `mirror ${m.client_name}: ${m.runs.length} run(s); ${m.versions} kept version(s), ${
            formatBytes(m.bytes)
          } ${dryRun ? "would be freed" : "freed"}`,
        );
      }
      if (r.schedules.length === 0) {
        lines.push("No schedule with a retention policy in scope: nothing to prune.");
      }
      return lines.join("\n");
    },
  );
}

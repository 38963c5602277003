import { loadConfig } from "../config/load.ts";
import { checkRepository } from "../repository/check.ts";
import { openRepository } from "../repository/open.ts";
import { loadKeys } from "../pipeline/identity.ts";
import { parseFlags } from "./args.ts";
import { formatBytes, formatDuration, out } from "./output.ts";

/**
 * `cairn check [--read-data] [--json]`: checks the repository in this process (see
 * repository/check.ts) and lists everything it finds. Exit 0 clean, 1 problems, 2 usage.
 */
export async function checkCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    "read-data": { type: "boolean" },
    json: { type: "boolean" },
  }, { min: 0, max: 0, names: [] });
  const config = await loadConfig(values.config as string | undefined);
  const repository = await openRepository(config.repository);
  const report = await checkRepository(repository, {
    readData: !!values["read-data"],
    identities: async () => (await loadKeys(config.repository.encryption)).identities,
  });
  if (values.json) {
    out(JSON.stringify(report));
  } else {
    for (const p of report.problems) out(`${p.kind}: ${p.message}`);
    for (const u of report.uploads_in_progress ?? []) {
      out(
        `in progress (not a problem): ${u.key} has a multipart upload initiated at ${
          u.initiated_at ?? "an unknown time"
        }, less than 24 h ago`,
      );
    }
    for (const note of report.notes ?? []) out(`note: ${note}`);
    out(
      `${
        report.clean ? "No problems" : `${report.problems.length} problem(s)`
      } in ${repository.location}: ${report.manifests} manifest(s), ${report.artifacts} artifact(s)${
        report.read_data ? `, ${formatBytes(report.bytes_read)} read and hashed` : ""
      }, ${formatDuration(report.duration_ms)}`,
    );
  }
  return report.clean ? 0 : 1;
}

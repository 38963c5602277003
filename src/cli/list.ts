import { loadConfig } from "../config/load.ts";
import { CLIENT_NAME } from "../repository/keys.ts";
import { listBackups, manifestSummary } from "../repository/manifest.ts";
import { openRepository } from "../repository/open.ts";
import { parseFlags, UsageError } from "./args.ts";
import { formatBytes, out, table } from "./output.ts";

/** Lists from the repository alone, so a fresh host sees every backup. */
export async function listCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { client: { type: "string" }, json: { type: "boolean" } }, {
    min: 0,
    max: 0,
    names: [],
  });
  const client = values.client as string | undefined;
  if (client !== undefined && !CLIENT_NAME.test(client)) {
    throw new UsageError(`Invalid --client ${JSON.stringify(client)}`);
  }
  const config = await loadConfig(values.config as string | undefined);
  const { backups } = await listBackups(await openRepository(config.repository), { client });
  if (values.json) {
    out(JSON.stringify({ backups: backups.map(manifestSummary) }));
    return 0;
  }
  if (backups.length === 0) {
    out(client ? `No backups of ${client}.` : "No backups yet.");
    return 0;
  }
  out(table([
    ["KEY", "CLIENT", "KIND", "LABEL", "SIZE", "CREATED"],
    ...backups.map((
      b,
    ) => [b.key, b.client_name, b.kind, b.label, formatBytes(b.size_bytes), b.created_at]),
  ]));
  return 0;
}

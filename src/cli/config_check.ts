import { stringify } from "yaml";
import { loadConfig } from "../config/load.ts";
import { redactConfig } from "../config/redacted.ts";
import { openRepository } from "../repository/open.ts";
import { parseFlags } from "./args.ts";
import { out } from "./output.ts";

/** Prints the resolved config; with --probe also proves the repository is reachable and writable. */
export async function configCheckCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { probe: { type: "boolean" } }, {
    min: 0,
    max: 0,
    names: [],
  });
  const config = await loadConfig(values.config as string | undefined);
  out("# configuration is valid; resolved values (secrets shown as ***):");
  out(stringify(JSON.parse(JSON.stringify(redactConfig(config)))).trimEnd());
  if (values.probe) {
    const repo = await openRepository(config.repository);
    await repo.checkWritable();
    out(`# probe: the repository ${repo.location} is reachable and writable`);
  }
  return 0;
}

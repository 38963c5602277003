import { stringify } from "yaml";
import { loadConfig } from "../config/load.ts";
import { redactConfig } from "../config/redacted.ts";
import { parseFlags } from "./args.ts";
import { out } from "./output.ts";

export async function configCheckCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {}, { min: 0, max: 0, names: [] });
  const config = await loadConfig(values.config as string | undefined);
  out("# configuration is valid; resolved values (secrets shown as ***):");
  out(stringify(JSON.parse(JSON.stringify(redactConfig(config)))).trimEnd());
  return 0;
}

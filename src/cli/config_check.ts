import { stringify } from "yaml";
import { loadConfig } from "../config/load.ts";
import { redactConfig } from "../config/redacted.ts";
import { unseen } from "../lazy.ts";
import { plural } from "../plural.ts";
import { parseFlags } from "./args.ts";
import { out } from "./output.ts";

/**
 * Prints the resolved config; with --probe also checks the repository, the external
 * tools and every client (one line each), exit 1 when any check fails.
 */
export async function configCheckCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { probe: { type: "boolean" } }, {
    min: 0,
    max: 0,
    names: [],
  });
  const config = await loadConfig(values.config as string | undefined);
  out("# configuration is valid; resolved values (secrets shown as ***):");
  out(stringify(JSON.parse(JSON.stringify(redactConfig(config)))).trimEnd());
  if (!values.probe) return 0;
  const { probeConfig } = await import(unseen("./probe.ts")) as typeof import("./probe.ts");
  let failed = 0;
  for await (const result of probeConfig(config)) {
    if (!result.ok) failed++;
    out(`${result.ok ? "ok  " : "FAIL"}  ${result.check}: ${result.detail}`);
  }
  out(failed ? `# probe: ${plural(failed, "check")} failed` : "# probe: every check passed");
  return failed ? 1 : 0;
}

import { ConfigError } from "../config/load.ts";
import { CairnError, describeError, toError } from "../errors.ts";
import { unseen } from "../lazy.ts";
import { VERSION } from "../version.ts";
import { HelpRequested, UsageError } from "./args.ts";
import { COMMAND_HELP } from "./help.ts";
import { err, out } from "./output.ts";

// Commands load on demand: `cairn backup` never pays for the HTTP stack, `version` for nothing.
export const USAGE = `cairn ${VERSION}: backups for one host

Usage:
  cairn daemon            [--config FILE]
  cairn backup  CLIENT    [--label L] [--json] [--config FILE]
  cairn restore KEY       [--client C] [--target T] [--yes] [--json] [--config FILE]
                          [--flush] [--table SCHEMA.TABLE ...] [--no-owner] [--keep-old]
  cairn verify  KEY       [--json] [--config FILE]
  cairn list              [--client C] [--json] [--config FILE]
  cairn jobs              [--status S] [--client C] [--limit N] [--json] [--config FILE]
  cairn prune             [--client C] [--dry-run] [--json] [--config FILE]
  cairn status            [--json] [--config FILE]
  cairn check             [--read-data] [--json] [--config FILE]
  cairn config check      [--probe] [--config FILE]
  cairn store copy        --from CONFIG|URL --to CONFIG|URL [--json]
  cairn version

The config file is --config FILE, else $CAIRN_CONFIG, else ./cairn.yaml.
"cairn COMMAND --help" describes one command and all its flags.`;

/** Errors that mean "you asked wrongly" rather than "the job failed": exit 2. */
const USAGE_CODES = new Set([
  "CONFIG_INVALID",
  "UNKNOWN_CLIENT",
  "INVALID_KEY",
  "VALIDATION_FAILED",
  "STORE_LOCKED",
  "STORE_NOT_EMPTY",
  "LISTEN_FAILED",
  // A key that names no backup is asked wrongly; a damaged one is a failed job (exit 1).
  "BACKUP_NOT_FOUND",
  // Refused before any job exists (restore preflight): the operator's to fix.
  "TARGET_NOT_EMPTY",
  // An encrypted backup this host holds no identity for: its configuration to fix.
  "IDENTITY_MISSING",
]);

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "daemon":
        return await (await import(unseen("./daemon.ts")) as typeof import("./daemon.ts"))
          .daemonCommand(rest);
      case "backup":
        return await (await import(unseen("./backup.ts")) as typeof import("./backup.ts"))
          .backupCommand(rest);
      case "restore":
        return await (await import(unseen("./restore.ts")) as typeof import("./restore.ts"))
          .restoreCommand(rest);
      case "verify":
        return await (await import(unseen("./verify.ts")) as typeof import("./verify.ts"))
          .verifyCommand(rest);
      case "list":
        return await (await import(unseen("./list.ts")) as typeof import("./list.ts")).listCommand(
          rest,
        );
      case "jobs":
        return await (await import(unseen("./jobs.ts")) as typeof import("./jobs.ts")).jobsCommand(
          rest,
        );
      case "check":
        return await (await import(unseen("./check.ts")) as typeof import("./check.ts"))
          .checkCommand(rest);
      case "status":
        return await (await import(unseen("./status.ts")) as typeof import("./status.ts"))
          .statusCommand(rest);
      case "prune":
        return await (await import(unseen("./prune.ts")) as typeof import("./prune.ts"))
          .pruneCommand(rest);
      case "store":
        if (rest[0] === "--help" || rest[0] === "-h") throw new HelpRequested();
        return await (await import(unseen("./store.ts")) as typeof import("./store.ts"))
          .storeCommand(rest);
      case "config":
        if (rest[0] === "--help" || rest[0] === "-h") throw new HelpRequested();
        if (rest[0] !== "check") {
          throw new UsageError(
            `Unknown command: config ${rest[0] ?? ""}`.trim() +
              " (did you mean: cairn config check?)",
          );
        }
        return await (await import(
          unseen("./config_check.ts")
        ) as typeof import("./config_check.ts")).configCheckCommand(rest.slice(1));
      case "version":
      case "--version":
        out(`cairn ${VERSION} (deno ${Deno.version.deno})`);
        return 0;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command: ${command}`);
    }
  } catch (error) {
    if (error instanceof HelpRequested) {
      out(COMMAND_HELP[command] ?? USAGE);
      return 0;
    }
    if (error instanceof UsageError) {
      const help = COMMAND_HELP[command] ?? USAGE;
      err(`cairn: ${error.message}\n\n${help}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      for (const p of error.problems) err(`${p.path || "(config)"}: ${p.message}`);
      return 2;
    }
    if (error instanceof CairnError) {
      err(`cairn: ${error.message}`);
      return USAGE_CODES.has(error.code) ? 2 : 1;
    }
    const e = toError(error);
    err(`cairn: unexpected error: ${describeError(e)}`);
    if (Deno.env.get("CAIRN_DEBUG")) err(e.stack ?? "");
    return 1;
  }
}

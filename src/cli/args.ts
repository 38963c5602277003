import { parseArgs as nodeParseArgs } from "node:util";

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** `--help` or `-h` among a subcommand's arguments: main prints that command's help, exit 0. */
export class HelpRequested extends Error {
  constructor() {
    super("help requested");
    this.name = "HelpRequested";
  }
}

type Spec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** node:util parseArgs with errors turned into usage errors (exit 2). */
export function parseFlags<S extends Spec>(
  argv: string[],
  spec: S,
  positionals: { min: number; max: number; names: string[] },
) {
  // Before parsing: `cairn backup --help` must not fail for its missing CLIENT.
  const end = argv.indexOf("--");
  const options = end === -1 ? argv : argv.slice(0, end);
  if (options.includes("--help") || options.includes("-h")) throw new HelpRequested();
  let parsed;
  try {
    parsed = nodeParseArgs({
      args: argv,
      options: { ...spec, config: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify.*$/s, ""));
  }
  const pos = parsed.positionals;
  if (pos.length < positionals.min) {
    throw new UsageError(`Missing argument: ${positionals.names[pos.length]}`);
  }
  if (pos.length > positionals.max) {
    throw new UsageError(`Unexpected argument: ${pos[positionals.max]}`);
  }
  return {
    values: parsed.values as Record<string, string | boolean | string[] | undefined>,
    positionals: pos,
  };
}

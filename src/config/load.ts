import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { CairnError } from "../errors.ts";
import { registerSecret } from "../redact.ts";
import { interpolate } from "./interpolate.ts";
import { type Config, ConfigSchema } from "./schema.ts";

export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends CairnError {
  readonly problems: ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[]) {
    super(
      "CONFIG_INVALID",
      `Invalid configuration in ${file}:\n` +
        problems.map((p) => `${p.path || "(root)"}: ${p.message}`).join("\n"),
      { details: problems },
    );
    this.problems = problems;
  }
}

/** `--config FILE`, else $CAIRN_CONFIG, else ./cairn.yaml (SPEC section 1). */
export function configPath(flag: string | undefined): string {
  return flag ?? Deno.env.get("CAIRN_CONFIG") ?? "cairn.yaml";
}

export function zodProblems(error: z.ZodError, prefix = ""): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({ path: base ? `${base}.${key}` : key, message: "unknown key" });
      }
    } else if (issue.code === "invalid_key") {
      out.push({
        path: base,
        message: `invalid name: ${issue.issues[0]?.message ?? issue.message}`,
      });
    } else {
      out.push({ path: base, message: issue.message });
    }
  }
  return out;
}

/** Parses YAML text into a validated config; every problem is reported at once, by path. */
export function parseConfig(
  text: string,
  options: { file?: string; env?: (name: string) => string | undefined } = {},
): Config {
  const file = options.file ?? "(config)";
  let tree: unknown;
  try {
    tree = parseYaml(text) ?? {};
  } catch (error) {
    throw new ConfigError(file, [{
      path: "",
      message: `not valid YAML: ${(error as Error).message}`,
    }]);
  }
  if (typeof tree !== "object" || Array.isArray(tree)) {
    throw new ConfigError(file, [{ path: "", message: "must be a YAML mapping" }]);
  }
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const { value, problems, secrets } = interpolate(tree, env);
  const parsed = ConfigSchema.safeParse(value);
  const all = [
    ...problems,
    ...protoClientProblems(value),
    ...(parsed.success ? [] : zodProblems(parsed.error)),
  ];
  if (parsed.success) all.push(...semanticProblems(parsed.data));
  if (all.length > 0) throw new ConfigError(file, all);
  const config = applyEnvOverrides(parsed.data!, env);
  for (const s of secrets) registerSecret(s);
  registerConfigSecrets(config);
  return config;
}

/** zod drops a "__proto__" key of a record without a word: say so instead of losing the client. */
function protoClientProblems(tree: unknown): ConfigProblem[] {
  const clients = (tree as { clients?: unknown } | null)?.clients;
  return clients !== null && typeof clients === "object" && Object.hasOwn(clients, "__proto__")
    ? [{ path: "clients.__proto__", message: "__proto__ cannot be a client name" }]
    : [];
}

export async function loadConfig(flag: string | undefined): Promise<Config> {
  const file = configPath(flag);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "file not found"
      : (error as Error).message;
    throw new ConfigError(file, [{
      path: "",
      message: `cannot read the config file: ${reason} (pass --config FILE or set CAIRN_CONFIG)`,
    }]);
  }
  return parseConfig(text, { file });
}

function semanticProblems(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const host = config.server.listen.slice(0, config.server.listen.lastIndexOf(":"));
  if (!isLoopbackHost(host) && !config.server.admin_key) {
    problems.push({
      path: "server.admin_key",
      message: `required when server.listen (${config.server.listen}) is not a loopback address`,
    });
  }
  return problems;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function applyEnvOverrides(config: Config, env: (name: string) => string | undefined): Config {
  return {
    ...config,
    tools: {
      pg_dump: env("CAIRN_PG_DUMP_PATH") || config.tools.pg_dump,
      pg_restore: env("CAIRN_PG_RESTORE_PATH") || config.tools.pg_restore,
    },
  };
}

function registerConfigSecrets(config: Config): void {
  registerSecret(config.server.admin_key);
  if (config.repository.kind === "s3") {
    registerSecret(config.repository.secret_access_key);
    registerSecret(config.repository.access_key_id);
  }
  for (const client of Object.values(config.clients)) {
    if (client.kind === "postgres" || client.kind === "redis") {
      try {
        const url = new URL(client.url);
        registerSecret(decodeURIComponent(url.password));
      } catch { /* validated already */ }
    }
    if (client.kind === "s3") {
      registerSecret(client.secret_access_key);
      registerSecret(client.access_key_id);
    }
  }
}

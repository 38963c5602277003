import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { CairnError } from "../errors.ts";
import { logger } from "../log.ts";
import { registerSecret } from "../redact.ts";
import { channelSecrets } from "../notify/config.ts";
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

/**
 * Zod issues as one problem per path. `input` (the value that was parsed) lets a
 * discriminated union say whether its `kind` is missing or unknown, where zod says
 * only "Invalid discriminator value".
 */
export function zodProblems(error: z.ZodError, prefix = "", input?: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    const union = issue as { discriminator?: string; options?: unknown[] };
    if (issue.code === "invalid_union" && union.discriminator && union.options) {
      const choices = union.options.map(String).join(", ");
      const value = valueAt(input, issue.path);
      out.push({
        path: base,
        message: value === undefined
          ? `missing: set ${union.discriminator} to one of ${choices}`
          : `unknown ${union.discriminator} ${JSON.stringify(value)}: one of ${choices}`,
      });
    } else if (issue.code === "unrecognized_keys") {
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

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = Object.hasOwn(value, key) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return value;
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
    ...(parsed.success ? [] : zodProblems(parsed.error, "", value)),
  ];
  if (parsed.success) all.push(...semanticProblems(parsed.data), ...passwordProblems(parsed.data));
  if (all.length > 0) throw new ConfigError(file, all);
  const config = applyEnvOverrides(withPasswordsInUrls(parsed.data!), env);
  for (const warning of clampWarnings(value, config)) logger.warn(warning);
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
      message:
        `cannot read the config file ${file}: ${reason} (pass --config FILE or set CAIRN_CONFIG)`,
    }]);
  }
  return parseConfig(text, { file });
}

/** The floors that the schema clamps poll intervals to (ms), for the warnings below. */
const POLL_FLOORS = { execution_worker_poll_ms: 250, schedule_worker_poll_ms: 1000 } as const;

/**
 * A setting below its floor is raised to it rather than refused (Athena does the
 * same), but the operator hears about it: one sentence per clamped value.
 */
export function clampWarnings(raw: unknown, config: Config): string[] {
  const backup = (raw as { backup?: Record<string, unknown> } | null)?.backup;
  if (!backup || typeof backup !== "object") return [];
  const out: string[] = [];
  for (const [name, floor] of Object.entries(POLL_FLOORS)) {
    const asked = backup[name];
    if (typeof asked === "number" && asked < floor) {
      out.push(
        `backup.${name} ${asked} is below the minimum ${floor}: using ${
          config.backup[name as keyof typeof POLL_FLOORS]
        }`,
      );
    }
  }
  return out;
}

/** The url/password pairs of a client: [url field, password field]. */
const PASSWORD_FIELDS = [["url", "password"], ["verify_url", "verify_password"]] as const;

/** A password given both in the url and beside it is ambiguous: one place only. */
function passwordProblems(config: Config): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const [name, client] of Object.entries(config.clients)) {
    for (const [urlField, passwordField] of PASSWORD_FIELDS) {
      const fields = client as Record<string, unknown>;
      const url = fields[urlField];
      if (typeof url !== "string" || fields[passwordField] === undefined) continue;
      let hasPassword = false;
      try {
        hasPassword = new URL(url).password !== "";
      } catch { /* the schema reports a bad url */ }
      if (hasPassword) {
        out.push({
          path: `clients.${name}.${passwordField}`,
          message: `the ${urlField} already holds a password: give it in one place only`,
        });
      }
    }
  }
  return out;
}

/**
 * Puts each client's `password` (and `verify_password`) into its url, percent-encoded
 * (RFC 3986 section 3.2.1), so a password with @ / # : % is one password and not
 * a broken url; the rest of cairn reads the url as before.
 */
function withPasswordsInUrls(config: Config): Config {
  const clients: Config["clients"] = {};
  for (const [name, client] of Object.entries(config.clients)) {
    const copy = { ...client } as Record<string, unknown>;
    for (const [urlField, passwordField] of PASSWORD_FIELDS) {
      const password = copy[passwordField];
      if (typeof copy[urlField] !== "string" || typeof password !== "string") continue;
      const url = new URL(copy[urlField] as string);
      // The setter leaves "%" as it is (WHATWG userinfo set): encode it all ourselves.
      url.password = encodeURIComponent(password);
      copy[urlField] = url.toString();
      registerSecret(password);
    }
    clients[name] = copy as Config["clients"][string];
  }
  return { ...config, clients };
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
  // A node can only run a client whose connection details its own config holds.
  for (const [i, name] of (config.node.clients ?? []).entries()) {
    if (!Object.hasOwn(config.clients, name)) {
      problems.push({
        path: `node.clients.${i}`,
        message: `${JSON.stringify(name)} is not a client of this config (clients: ${
          Object.keys(config.clients).join(", ") || "none"
        })`,
      });
    }
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
      // ATHENA_* are the names the Athena backup API uses for the same settings.
      pg_dump: env("CAIRN_PG_DUMP_PATH") || env("ATHENA_PG_DUMP_PATH") || config.tools.pg_dump,
      pg_restore: env("CAIRN_PG_RESTORE_PATH") || env("ATHENA_PG_RESTORE_PATH") ||
        config.tools.pg_restore,
      tar: env("CAIRN_TAR_PATH") || config.tools.tar,
      ...(env("CAIRN_REDIS_SERVER_PATH") || config.tools.redis_server
        ? { redis_server: env("CAIRN_REDIS_SERVER_PATH") || config.tools.redis_server }
        : {}),
    },
  };
}

function registerConfigSecrets(config: Config): void {
  registerSecret(config.server.admin_key);
  registerSecret(config.server.metrics_token);
  if (config.store.url) {
    try {
      registerSecret(decodeURIComponent(new URL(config.store.url).password));
    } catch { /* validated already */ }
  }
  if (config.repository.kind === "s3") {
    registerSecret(config.repository.secret_access_key);
    registerSecret(config.repository.access_key_id);
  }
  for (const client of Object.values(config.clients)) {
    if (client.kind === "postgres" || client.kind === "redis") {
      try {
        const url = new URL(client.url);
        registerSecret(decodeURIComponent(url.password));
        if (client.kind === "postgres" && client.verify_url) {
          registerSecret(decodeURIComponent(new URL(client.verify_url).password));
        }
      } catch { /* validated already */ }
    }
    if (client.kind === "s3") {
      registerSecret(client.secret_access_key);
      registerSecret(client.access_key_id);
    }
  }
  for (const channel of config.notifications) {
    for (const secret of channelSecrets(channel)) registerSecret(secret);
  }
}

import type { ClientConfig, Config } from "../config/schema.ts";
import { describeError, toError } from "../errors.ts";
import { connect, parsePgUrl, pgError } from "../engines/postgres/conn.ts";
import { checkGnuTar } from "../engines/directory/gnu_tar.ts";
import { toolVersion } from "../engines/postgres/tools.ts";
import { RedisConnection, text } from "../engines/redis/resp.ts";
import { parseRedisUrl } from "../engines/redis/url.ts";
import { S3Source } from "../engines/s3mirror/source.ts";
import { openRepository } from "../repository/open.ts";
import { checkWritable } from "../repository/preflight.ts";

/** One line of `config check --probe`: what was checked, and "ok: ..." or the problem. */
export interface ProbeResult {
  check: string;
  ok: boolean;
  detail: string;
}

/** A probe that has not answered after this long is reported as failed (ms). */
const PROBE_TIMEOUT_MS = 15_000;

async function run(check: string, probe: () => Promise<string>): Promise<ProbeResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const detail = await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)),
          PROBE_TIMEOUT_MS,
        );
      }),
    ]);
    return { check, ok: true, detail };
  } catch (error) {
    // One line per check: a tool's multi-line output keeps its first line.
    const lines = describeError(toError(error)).split("\n").map((l) => l.trim()).filter(Boolean);
    return {
      check,
      ok: false,
      detail: lines.length > 1 ? `${lines[0]} (…)` : lines[0] ?? "failed",
    };
  } finally {
    clearTimeout(timer);
  }
}

async function probePostgres(url: string): Promise<string> {
  const target = parsePgUrl(url);
  const sql = connect(target);
  try {
    const [row] = await sql`SELECT current_user AS who, current_setting('server_version') AS v`;
    return `connected to PostgreSQL ${row.v} at ${target.host}:${target.port}/${target.database} as ${row.who}`;
  } catch (error) {
    throw pgError(error, target);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

async function probeRedis(url: string): Promise<string> {
  const target = parseRedisUrl(url);
  // open() authenticates and PINGs; a refusal names the credentials or the address.
  const conn = await RedisConnection.open(target, { selectDb: true });
  try {
    const info = text(await conn.command(["INFO", "server"]));
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
    return `connected to Redis ${version} at ${target.host}:${target.port}, db ${target.db}`;
  } finally {
    conn.close();
  }
}

async function probeS3(client: Extract<ClientConfig, { kind: "s3" }>): Promise<string> {
  const source = new S3Source(client);
  await source.checkBucket();
  const prefixes = client.prefixes.length ? client.prefixes : [""];
  for (const prefix of prefixes) {
    // One listing page proves the credentials may list; stop at the first object.
    for await (const _ of source.list(prefix)) break;
  }
  return `bucket ${client.bucket} at ${client.endpoint} is readable (${
    prefixes.map((p) => p || "the whole bucket").join(", ")
  })`;
}

async function probeDirectory(path: string): Promise<string> {
  const info = await Deno.stat(path);
  if (!info.isDirectory) throw new Error(`${path} is not a directory`);
  for await (const _ of Deno.readDir(path)) break;
  return `${path} exists and is readable`;
}

async function probeSqlite(path: string): Promise<string> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new Error(`${path} is not a file`);
  const file = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(16);
    const n = await file.read(head);
    const magic = new TextDecoder().decode(head.subarray(0, n ?? 0));
    // Source: SQLite file format, section 1.3: the header string "SQLite format 3\0".
    if (n !== 0 && n !== null && magic !== "SQLite format 3\0") {
      throw new Error(`${path} is not a SQLite database (no "SQLite format 3" header)`);
    }
  } finally {
    file.close();
  }
  return `${path} exists and is readable`;
}

function probeClient(client: ClientConfig): () => Promise<string> {
  switch (client.kind) {
    case "postgres":
      return () => probePostgres(client.url);
    case "redis":
      return () => probeRedis(client.url);
    case "s3":
      return () => probeS3(client);
    case "directory":
      return () => probeDirectory(client.path);
    case "sqlite":
      return () => probeSqlite(client.path);
  }
}

/**
 * Every check `config check --probe` makes, in order: the repository, each external
 * tool a configured client needs, then each client (connect and authenticate, or
 * the path exists and is readable). Checks run one after another, each with a
 * timeout; none changes anything but the repository's probe file.
 */
export async function* probeConfig(config: Config): AsyncGenerator<ProbeResult> {
  yield await run(`repository (${config.repository.kind})`, async () => {
    const repo = await openRepository(config.repository);
    await checkWritable(repo);
    return `${repo.location} is reachable and writable`;
  });
  const kinds = new Set(Object.values(config.clients).map((c) => c.kind));
  if (kinds.has("postgres")) {
    for (
      const [tool, setting] of [["pg_dump", "tools.pg_dump"], ["pg_restore", "tools.pg_restore"]]
    ) {
      const bin = config.tools[tool as "pg_dump" | "pg_restore"];
      yield await run(`tool ${tool}`, async () => {
        const v = await toolVersion(bin, setting);
        return `${bin} is PostgreSQL ${v.version}`;
      });
    }
  }
  if (kinds.has("directory")) {
    yield await run("tool tar", async () => {
      const v = await checkGnuTar(config.tools.tar);
      return `${config.tools.tar} is GNU tar ${v.text}`;
    });
  }
  for (const [name, client] of Object.entries(config.clients)) {
    yield await run(`client ${name} (${client.kind})`, probeClient(client));
  }
}

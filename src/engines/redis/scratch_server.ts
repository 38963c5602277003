import { join } from "node:path";
import { CairnError } from "../../errors.ts";
import { baseChildEnv, runCommand } from "../process.ts";
import { markChild } from "../../io/scratch.ts";
import { parseInfo, RedisConnection, RedisReplyError, text } from "./resp.ts";
import { parseRedisUrl } from "./url.ts";

/** What a scratch redis-server says about an RDB it loaded. */
export interface ScratchLoad {
  /** The server's version ("7.0.15"). */
  version: string;
  /** DEBUG DIGEST of the loaded dataset: 40 hex digits, all zeros when empty. */
  digest: string;
  /** INFO keyspace: keys per database ("db0" -> n), empty databases left out. */
  keys_per_db: Record<string, number>;
}

/** Reads the version out of `redis-server --version` ("Redis server v=7.0.15 sha=..."). */
export function parseRedisServerVersion(output: string): string | null {
  return /\bv=(\d+\.\d+(?:\.\d+)?)/.exec(output)?.[1] ?? null;
}

/** INFO keyspace ("db0:keys=3,expires=1,avg_ttl=0") as keys per database. */
export function keyspaceCounts(info: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(info)) {
    const m = /^db\d+$/.test(name) ? /(?:^|,)keys=(\d+)/.exec(value) : null;
    if (m && Number(m[1]) > 0) out[name] = Number(m[1]);
  }
  return out;
}

/**
 * The version of the redis-server at `bin`, or null when `bin` is the default
 * (`redis-server` looked up on PATH) and none is installed: the caller falls back
 * to its own checks. An explicitly configured binary that cannot be run is
 * TOOL_MISSING naming `setting`.
 */
export async function redisServerVersion(
  bin: string,
  explicit: boolean,
  setting: string,
): Promise<string | null> {
  let out: Deno.CommandOutput;
  try {
    out = await runCommand(bin, ["--version"]);
  } catch (error) {
    if (!explicit && error instanceof Deno.errors.NotFound) return null;
    throw new CairnError(
      "TOOL_MISSING",
      `${bin} could not be run (${
        (error as Error).message
      }): install redis-server or point ${setting} at it`,
      { cause: error },
    );
  }
  const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const version = parseRedisServerVersion(said);
  if (!out.success || version === null) {
    throw new CairnError(
      "TOOL_MISSING",
      `${bin} --version did not report a Redis version (${
        said.trim().slice(0, 200) || "no output"
      }); check ${setting}`,
    );
  }
  return version;
}

/** Why a scratch server could not load an RDB that cairn itself parsed: not the backup's fault. */
export class ScratchUnsupported extends Error {}

const LOG_KEEP = 16 * 1024;

/** What a scratch load needs: the server binary and version, where, and what to load. */
export interface LoadOptions {
  bin: string;
  version: string;
  dir: string;
  dbfilename: string;
  /** The highest database number in the RDB (from the parse). */
  maxDb: number;
  signal: AbortSignal;
  phase: (phase: string) => void;
}

/**
 * Loads the RDB `dir/dbfilename` into a private scratch redis-server and reads its
 * DEBUG DIGEST and INFO keyspace, then shuts it down (also on failure or abort).
 *
 * The server listens on a free loopback port, behind a random password given in a
 * config file in `dir` (never on its command line, which other users can read);
 * it saves nothing (`save ""`, `appendonly no`). It is started as a replica of a
 * port this process holds open and never answers, because a master drops keys
 * whose TTL has passed while it loads (redis' rdb.c, "keys expired" in its log)
 * and the digest would then differ from the source's; a replica keeps them, and
 * never syncs from the silent "master". `databases` is raised to hold the highest
 * database the RDB uses.
 *
 * Throws ScratchUnsupported when the server refuses data it cannot know (module
 * types), VERIFY_FAILED with the server's log when it cannot load the file.
 */
export async function loadInScratchServer(options: LoadOptions): Promise<ScratchLoad> {
  for (let attempt = 1;; attempt++) {
    try {
      return await loadOnce(options);
    } catch (error) {
      // Another process took the port between our probe and the server's bind.
      if (error instanceof PortTaken && attempt < 3) continue;
      throw error;
    }
  }
}

class PortTaken extends Error {}

function freeLoopbackPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function loadOnce(options: LoadOptions): Promise<ScratchLoad> {
  options.signal.throwIfAborted();
  const password = crypto.randomUUID().replaceAll("-", "");
  const port = freeLoopbackPort();
  // The replica's master: a port held open that accepts nothing (see above).
  const silentMaster = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conf = join(options.dir, "scratch-redis.conf");
  const lines = [
    `port ${port}`,
    "bind 127.0.0.1",
    `dir "${options.dir}"`,
    `dbfilename "${options.dbfilename}"`,
    'save ""',
    "appendonly no",
    "daemonize no",
    'logfile ""',
    `requirepass ${password}`,
    "enable-debug-command local",
    `databases ${Math.max(16, options.maxDb + 1)}`,
    `replicaof 127.0.0.1 ${(silentMaster.addr as Deno.NetAddr).port}`,
  ];
  await Deno.writeTextFile(conf, lines.join("\n") + "\n", { mode: 0o600 });
  let log = "";
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(options.bin, {
      args: [conf],
      env: baseChildEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    silentMaster.close();
    throw new CairnError("TOOL_MISSING", `${options.bin} could not be started: ${error}`);
  }
  // Should cairn die before it stops the server, the scratch sweep kills it.
  await markChild(options.dir, child.pid).catch(() => {});
  const decoder = new TextDecoder();
  const keep = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) log = (log + decoder.decode(chunk)).slice(-LOG_KEEP);
  };
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]).catch(() => {});
  let exited: Deno.CommandStatus | null = null;
  const status = child.status.then((s) => (exited = s));
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  };
  options.signal.addEventListener("abort", kill, { once: true });
  const target = parseRedisUrl(`redis://:${password}@127.0.0.1:${port}`);
  let conn: RedisConnection | null = null;
  try {
    options.phase(`loading into a scratch redis-server ${options.version}`);
    while (conn === null) {
      options.signal.throwIfAborted();
      if (exited !== null) throw loadFailure(options, exited as Deno.CommandStatus, log);
      try {
        conn = await RedisConnection.open(target);
      } catch {
        // Not listening yet, or -LOADING: the dataset is still being read.
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const digest = await conn.command(["DEBUG", "DIGEST"]);
    if (digest instanceof RedisReplyError) {
      throw new CairnError(
        "VERIFY_FAILED",
        `The scratch redis-server refused DEBUG DIGEST: ${digest.message}`,
      );
    }
    const keyspace = keyspaceCounts(parseInfo(await conn.ok(["INFO", "keyspace"])));
    return { version: options.version, digest: text(digest), keys_per_db: keyspace };
  } finally {
    options.signal.removeEventListener("abort", kill);
    if (conn !== null && exited === null) {
      // The reply is the connection closing; a server that does not go is killed.
      await Promise.race([
        conn.command(["SHUTDOWN", "NOSAVE"]).catch(() => {}),
        new Promise((r) => setTimeout(r, 5_000)),
      ]);
      conn.close();
    }
    const timer = setTimeout(kill, 5_000);
    if (conn === null) kill();
    await status;
    clearTimeout(timer);
    await drained;
    silentMaster.close();
  }
}

/**
 * What a redis-server's log says about why it stopped: its error lines without the
 * `pid:role date time #` prefix, start-up chatter and host warnings left out, else
 * its last lines. Pure.
 */
export function logReason(log: string): string {
  const lines = log.split("\n")
    .map((l) => l.replace(/^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [#*.-] /, "").trim())
    .filter((l) =>
      l && !/^WARNING|Server initialized|Configuration loaded|Redis version=|oO0OoO0OoO0Oo/.test(l)
    );
  const errors = lines.filter((l) =>
    /error|fatal|can't|cannot|short read|unexpected|invalid|wrong|module|bad/i.test(l)
  );
  return (errors.length ? errors : lines).slice(-4).join("; ") || "no log";
}

function loadFailure(
  options: { bin: string; version: string; dbfilename: string },
  status: Deno.CommandStatus,
  log: string,
): Error {
  if (/Address already in use/i.test(log)) return new PortTaken();
  const why = logReason(log);
  if (/module|Can't handle RDB format version/i.test(why)) {
    return new ScratchUnsupported(
      `${options.bin} ${options.version} cannot load this RDB (${why})`,
    );
  }
  return new CairnError(
    "VERIFY_FAILED",
    `A scratch ${options.bin} ${options.version} could not load the backup's RDB (it exited with ${status.code}): ${why}`,
  );
}

import { freePort } from "./tmp.ts";
import { RedisConnection, type Reply } from "../../src/engines/redis/resp.ts";
import { parseRedisUrl } from "../../src/engines/redis/url.ts";

export interface TestRedis {
  port: number;
  url: string;
  dir: string;
  cmd(...args: (string | Uint8Array)[]): Promise<Reply>;
  digest(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts its own redis-server on a free port, with DEBUG enabled; fails clearly if it cannot. */
export async function startRedis(
  extra: string[] = [],
  options: { password?: string } = {},
): Promise<TestRedis> {
  if (Deno.env.get("CAIRN_TEST_SKIP_SERVICES") === "1") {
    throw new Error("CAIRN_TEST_SKIP_SERVICES=1");
  }
  const dir = await Deno.makeTempDir({ prefix: "cairn-redis-" });
  const port = freePort();
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--enable-debug-command",
    "yes",
    "--repl-diskless-sync-delay",
    "0",
    "--daemonize",
    "no",
    ...extra,
  ];
  if (options.password) args.push("--requirepass", options.password);
  let child: Deno.ChildProcess;
  try {
    // Its log goes to stdout (no --logfile): a server that exits at start says why.
    child = new Deno.Command("redis-server", { args, stdout: "piped", stderr: "piped" }).spawn();
  } catch (error) {
    throw new Error(
      `redis-server could not be started (${
        (error as Error).message
      }): install it (apt-get install redis-server)`,
    );
  }
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : "";
  const url = `redis://${auth}127.0.0.1:${port}`;
  let output = "";
  const drain = (async () => {
    const decoder = new TextDecoder();
    const read = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) if (output.length < 100_000) output += decoder.decode(chunk);
    };
    await Promise.all([read(child.stdout), read(child.stderr)]);
  })();
  let exited: Deno.CommandStatus | null = null;
  child.status.then((s) => (exited = s));
  let conn: RedisConnection | null = null;
  for (let i = 0; i < 400 && !conn && !exited; i++) {
    try {
      conn = await RedisConnection.open(parseRedisUrl(url));
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  if (!conn) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await drain.catch(() => {});
    throw new Error(
      `redis-server on port ${port} ${
        exited ? `exited with ${(exited as Deno.CommandStatus).code}` : "did not come up in 10 s"
      }:\n${output.slice(-4000)}`,
    );
  }
  const c = conn;
  return {
    port,
    url,
    dir,
    cmd: (...a) => c.command(a),
    digest: async () => String(await c.command(["DEBUG", "DIGEST"])),
    async stop() {
      c.close();
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await drain.catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Every type and encoding Redis 7 writes, small and large, with TTLs, dbs, binary data, a stream with groups. */
export async function fillEverything(r: TestRedis): Promise<void> {
  const bin = new Uint8Array([0, 1, 2, 255, 254, 0, 10, 13]);
  await r.cmd("SET", "str:small", "hello");
  await r.cmd("SET", "str:int", "12345");
  await r.cmd("SET", "str:negint", "-987654321");
  await r.cmd("SET", "str:empty", "");
  await r.cmd("SET", "str:compressible", "abc".repeat(20000));
  await r.cmd("SET", bin, bin);
  await r.cmd("SET", "str:ttl", "soon", "PX", "3600000");
  await r.cmd(
    "EVAL",
    `
    for i = 1, 10 do redis.call('RPUSH', 'list:small', 'e' .. i) end
    for i = 1, 12000 do redis.call('RPUSH', 'list:big', 'element-' .. i) end
    redis.call('RPUSH', 'list:plain', string.rep('P', 20000), 'x')
    for i = 1, 20 do redis.call('SADD', 'set:intset', i * 7) end
    for i = 1, 20 do redis.call('SADD', 'set:listpack', 'm' .. i) end
    for i = 1, 6000 do redis.call('SADD', 'set:hashtable', 'member-' .. i) end
    for i = 1, 10 do redis.call('ZADD', 'zset:listpack', i * 0.5, 'z' .. i) end
    redis.call('ZADD', 'zset:listpack', 'inf', 'top', '-inf', 'bottom')
    for i = 1, 6000 do redis.call('ZADD', 'zset:skiplist', i / 3, 'zm-' .. i) end
    redis.call('ZADD', 'zset:skiplist', 'inf', 'zinf')
    for i = 1, 10 do redis.call('HSET', 'hash:listpack', 'f' .. i, 'v' .. i) end
    for i = 1, 6000 do redis.call('HSET', 'hash:hashtable', 'field-' .. i, 'value-' .. i) end
    redis.call('HSET', 'hash:bigvalue', 'f', string.rep('V', 5000))
    return 1`,
    "0",
  );
  await r.cmd("EXPIRE", "hash:hashtable", "86400");
  for (let i = 0; i < 30; i++) {
    await r.cmd("XADD", "stream:s", "*", "n", String(i), "payload", "x".repeat(i));
  }
  await r.cmd("XGROUP", "CREATE", "stream:s", "g1", "0");
  await r.cmd("XGROUP", "CREATE", "stream:s", "g2", "$");
  await r.cmd("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "5", "STREAMS", "stream:s", ">");
  await r.cmd("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "3", "STREAMS", "stream:s", ">");
  const first = (await r.cmd("XRANGE", "stream:s", "-", "+", "COUNT", "1")) as Uint8Array[][];
  await r.cmd("XDEL", "stream:s", first[0][0]);
  await r.cmd(
    "FUNCTION",
    "LOAD",
    "#!lua name=cairnlib\nredis.register_function('cairn_echo', function(keys, args) return args[1] end)",
  );
  await r.cmd("SELECT", "1");
  await r.cmd("SET", "db1:key", "one");
  await r.cmd("HSET", "db1:hash", "a", "1");
  await r.cmd("SELECT", "5");
  await r.cmd("SET", "db5:key", "five", "EX", "7200");
  await r.cmd("SELECT", "0");
}

import { CairnError } from "../../errors.ts";
import { isLoopbackHost } from "../../config/load.ts";
import { logger } from "../../log.ts";
import { parseInfo, RedisConnection, RedisReplyError, text } from "./resp.ts";
import { describe, type RedisTarget } from "./url.ts";

export interface Snapshot {
  body: ReadableStream<Uint8Array>;
  redisVersion: string;
  method: "sync" | "bgsave";
  /** The RDB's length in bytes when the server says it (`$<len>`, a dump file); null when diskless. */
  length: number | null;
  close(): void;
}

const encoder = new TextEncoder();

/**
 * A point-in-time RDB of the whole server, taken the way a replica gets one
 * (redis-cli --rdb): handshake, SYNC, then the payload as `$<len>` or diskless
 * `$EOF:<mark>`, after keep-alive newlines. Nothing is buffered beyond a chunk.
 */
export async function takeSnapshot(target: RedisTarget, signal: AbortSignal): Promise<Snapshot> {
  const conn = await RedisConnection.open(target);
  const onAbort = () => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const info = parseInfo(await conn.ok(["INFO", "server"]));
    const redisVersion = info.redis_version ?? "unknown";
    // Not fatal: older servers do not know these.
    await conn.command(["REPLCONF", "capa", "eof"]);
    await conn.command(["REPLCONF", "rdb-only", "1"]);
    await conn.writeRaw(encoder.encode("SYNC\r\n"));
    let header: string | null;
    for (;;) {
      header = await conn.queue.readLine();
      if (header === null) {
        throw new CairnError(
          "SOURCE_UNAVAILABLE",
          `${describe(target)} closed the connection during SYNC`,
        );
      }
      if (header !== "") break; // bare newlines are keep-alives while the server prepares the RDB
    }
    if (header.startsWith("-")) {
      conn.close();
      return await fallbackBgsave(target, header.slice(1), redisVersion, signal);
    }
    const body = header.startsWith("$EOF:")
      ? eofBody(conn, header.slice(5))
      : lengthBody(conn, header);
    const length = /^\$(\d+)$/.exec(header);
    return {
      body,
      redisVersion,
      method: "sync",
      length: length ? Number(length[1]) : null,
      close: () => conn.close(),
    };
  } catch (error) {
    conn.close();
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function lengthBody(conn: RedisConnection, header: string): ReadableStream<Uint8Array> {
  const m = /^\$(\d+)$/.exec(header);
  if (!m) {
    throw new CairnError(
      "SOURCE_UNAVAILABLE",
      `Unexpected reply to SYNC: ${JSON.stringify(header.slice(0, 60))}`,
    );
  }
  let left = Number(m[1]);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (left === 0) {
        conn.close();
        return controller.close();
      }
      const chunk = await conn.queue.readSome(Math.min(left, 1 << 20));
      left -= chunk.byteLength;
      controller.enqueue(chunk.slice());
    },
    cancel() {
      conn.close();
    },
  });
}

/**
 * Diskless: the RDB ends with the same 40-byte mark; it may straddle two reads.
 * Chunks pass on as they came (no copy): only a chunk ending in what could be the
 * start of the mark holds those few bytes back until the next read decides.
 */
export function eofBody(
  conn: Pick<RedisConnection, "queue" | "close">,
  mark: string,
): ReadableStream<Uint8Array> {
  if (mark.length !== 40) {
    throw new CairnError("SOURCE_UNAVAILABLE", "Malformed $EOF mark in the SYNC reply");
  }
  const markBytes = encoder.encode(mark);
  const findMark = searcher(markBytes);
  let held = new Uint8Array(0);
  return new ReadableStream<Uint8Array>({
    // A pull must enqueue or close before it returns, or the stream stalls: a read
    // that is all held back (a few bytes that may begin the mark) reads again.
    async pull(controller) {
      for (;;) {
        let chunk: Uint8Array;
        try {
          chunk = await conn.queue.readSome(1 << 20);
        } catch {
          throw new CairnError(
            "SOURCE_UNAVAILABLE",
            "The connection ended before the RDB end mark",
          );
        }
        if (held.length > 0) {
          // Rare: the last read ended like the mark begins. Judge both together.
          const joined = new Uint8Array(held.length + chunk.length);
          joined.set(held);
          joined.set(chunk, held.length);
          chunk = joined;
          held = new Uint8Array(0);
        }
        const at = findMark(chunk);
        if (at !== -1) {
          if (at > 0) controller.enqueue(chunk.subarray(0, at));
          conn.close();
          return controller.close();
        }
        const keep = markPrefixAtEnd(chunk, markBytes);
        if (keep > 0) held = chunk.slice(chunk.length - keep);
        if (chunk.length > keep) return controller.enqueue(chunk.subarray(0, chunk.length - keep));
      }
    },
    cancel() {
      conn.close();
    },
  });
}

/** The length of the longest end of `chunk` that is a proper start of `mark` (0 if none). */
export function markPrefixAtEnd(chunk: Uint8Array, mark: Uint8Array): number {
  for (let k = Math.min(mark.length - 1, chunk.length); k > 0; k--) {
    const from = chunk.length - k;
    if (chunk[from] !== mark[0]) continue;
    let j = 1;
    while (j < k && chunk[from + j] === mark[j]) j++;
    if (j === k) return k;
  }
  return 0;
}

/**
 * Finds `needle` in a haystack (Boyer-Moore-Horspool). A scan for the mark's first
 * byte with a compare at each hit took a sixth of the main thread in a snapshot of
 * text values, where a hex digit comes every few dozen bytes (1.2 s a GiB). Here a
 * byte that cannot end the mark moves the window by up to its length (0.15 s a GiB).
 */
export function searcher(needle: Uint8Array): (haystack: Uint8Array) => number {
  const m = needle.length;
  const skip = new Int32Array(256).fill(m);
  for (let i = 0; i < m - 1; i++) skip[needle[i]] = m - 1 - i;
  const last = needle[m - 1];
  return (haystack) => {
    for (let i = 0; i <= haystack.length - m;) {
      const c = haystack[i + m - 1];
      if (c === last) {
        let j = m - 2;
        while (j >= 0 && haystack[i + j] === needle[j]) j--;
        if (j < 0) return i;
      }
      i += skip[c];
    }
    return -1;
  };
}

/**
 * When replication is refused, BGSAVE and read the dump file, but only when that
 * file is ours to read (same host). Otherwise say which permission is missing.
 */
async function fallbackBgsave(
  target: RedisTarget,
  refusal: string,
  redisVersion: string,
  signal: AbortSignal,
): Promise<Snapshot> {
  const need =
    `grant the replication permission (ACL SETUSER ${
      target.username ?? "default"
    } +sync +replconf, or +psync), ` +
    "or run cairn on the Redis host with read access to its dump file";
  if (!isLoopbackHost(target.host)) {
    throw new CairnError(
      "SOURCE_REFUSED",
      `${describe(target)} refused replication (${refusal}): ${need}`,
    );
  }
  const conn = await RedisConnection.open(target);
  try {
    const dir = await conn.command(["CONFIG", "GET", "dir"]);
    const file = await conn.command(["CONFIG", "GET", "dbfilename"]);
    if (
      dir instanceof RedisReplyError || file instanceof RedisReplyError || !Array.isArray(dir) ||
      !Array.isArray(file)
    ) {
      throw new CairnError(
        "SOURCE_REFUSED",
        `${describe(target)} refused replication (${refusal}) and CONFIG GET: ${need}`,
      );
    }
    const path = `${text(dir[1])}/${text(file[1])}`;
    // rdb_saves counts finished saves (Redis >= 7.0); LASTSAVE has one-second
    // resolution, so on older servers start the save in a fresh second.
    const counted = (info: Record<string, string>) => info.rdb_saves !== undefined;
    const before = parseInfo(await conn.ok(["INFO", "persistence"]));
    const lastSave = Number(await conn.ok(["LASTSAVE"]));
    if (!counted(before)) await new Promise((r) => setTimeout(r, 1100 - (Date.now() % 1000)));
    const started = await conn.command(["BGSAVE"]);
    if (started instanceof RedisReplyError && !/already in progress/i.test(started.message)) {
      throw new CairnError(
        "SOURCE_REFUSED",
        `${
          describe(target)
        } refused replication (${refusal}) and BGSAVE (${started.message}): ${need}`,
      );
    }
    logger.info("Replication refused; using BGSAVE and the local dump file", { path, refusal });
    const deadline = Date.now() + 30 * 60_000;
    for (;;) {
      signal.throwIfAborted();
      const info = parseInfo(await conn.ok(["INFO", "persistence"]));
      const done = counted(before)
        ? Number(info.rdb_saves) > Number(before.rdb_saves)
        : Number(info.rdb_last_save_time) > lastSave;
      if (info.rdb_bgsave_in_progress === "0" && done) {
        if (info.rdb_last_bgsave_status !== "ok") {
          throw new CairnError("SOURCE_UNAVAILABLE", `${describe(target)}: BGSAVE failed`);
        }
        break;
      }
      if (Date.now() > deadline) {
        throw new CairnError(
          "SOURCE_UNAVAILABLE",
          `${describe(target)}: BGSAVE did not finish in 30 minutes`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    let f: Deno.FsFile;
    try {
      f = await Deno.open(path, { read: true });
    } catch (error) {
      throw new CairnError(
        "SOURCE_REFUSED",
        `${
          describe(target)
        } refused replication (${refusal}) and its dump file ${path} is not readable (${
          (error as Error).message
        }): ${need}`,
      );
    }
    const length = await f.stat().then((s) => s.size, () => null);
    return { body: f.readable, redisVersion, method: "bgsave", length, close: () => {} };
  } finally {
    conn.close();
  }
}

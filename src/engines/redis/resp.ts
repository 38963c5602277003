import { CairnError } from "../../errors.ts";
import { ByteQueue } from "../byte_queue.ts";
import { describe, type RedisTarget } from "./url.ts";

export type Reply = string | number | Uint8Array | null | RedisReplyError | Reply[];

export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
  }
}

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");

export type Arg = string | Uint8Array;

/** RESP encoding of one command as an array of bulk strings. */
export function encodeCommand(args: Arg[]): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
  let size = parts[0].length;
  for (const arg of args) {
    const bytes = typeof arg === "string" ? encoder.encode(arg) : arg;
    const head = encoder.encode(`$${bytes.length}\r\n`);
    parts.push(head, bytes, CRLF);
    size += head.length + bytes.length + 2;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * A connection speaking RESP2 directly over TCP (or TLS): commands are written in
 * order and replies resolved in order, so callers can pipeline by not awaiting.
 */
export class RedisConnection {
  readonly target: RedisTarget;
  readonly #conn: Deno.Conn;
  readonly queue: ByteQueue;
  #writing: Promise<void> = Promise.resolve();
  #replies: Array<{ resolve: (r: Reply) => void; reject: (e: unknown) => void }> = [];
  #reading = false;
  #closed = false;

  private constructor(target: RedisTarget, conn: Deno.Conn) {
    this.target = target;
    this.#conn = conn;
    this.queue = new ByteQueue(conn.readable);
  }

  static async open(
    target: RedisTarget,
    options: { selectDb?: boolean } = {},
  ): Promise<RedisConnection> {
    let conn: Deno.Conn;
    try {
      conn = target.tls
        ? await Deno.connectTls({ hostname: target.host, port: target.port })
        : await Deno.connect({ hostname: target.host, port: target.port });
    } catch (error) {
      const e = error as Error;
      const why = e instanceof Deno.errors.ConnectionRefused
        ? "connection refused: is it running and listening there?"
        : e.message;
      throw new CairnError("SOURCE_UNAVAILABLE", `${describe(target)}: ${why}`, { cause: error });
    }
    const c = new RedisConnection(target, conn);
    try {
      if (target.password !== null) {
        const auth = target.username
          ? ["AUTH", target.username, target.password]
          : ["AUTH", target.password];
        const reply = await c.command(auth);
        if (reply instanceof RedisReplyError) {
          throw new CairnError(
            "SOURCE_REFUSED",
            `${describe(target)} rejected the credentials${
              target.username ? ` of user ${target.username}` : ""
            }: ${reply.message}`,
          );
        }
      }
      const ping = await c.command(["PING"]);
      if (ping instanceof RedisReplyError) {
        const code = /NOAUTH|WRONGPASS|NOPERM/.test(ping.message)
          ? "SOURCE_REFUSED"
          : "SOURCE_UNAVAILABLE";
        throw new CairnError(
          code,
          `${describe(target)}: ${ping.message}${
            /NOAUTH/.test(ping.message) ? " (put the password in the url)" : ""
          }`,
        );
      }
      if (options.selectDb && target.db !== 0) await c.ok(["SELECT", String(target.db)]);
      return c;
    } catch (error) {
      c.close();
      throw error;
    }
  }

  /** Writes a command now; its reply resolves in order. */
  send(args: Arg[]): Promise<Reply> {
    return this.sendRaw([encodeCommand(args)]);
  }

  /** Writes pre-encoded bytes (possibly a command streamed in parts) and awaits one reply. */
  sendRaw(parts: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Reply> {
    const reply = new Promise<Reply>((resolve, reject) => this.#replies.push({ resolve, reject }));
    this.#writing = this.#writing.then(async () => {
      for await (const part of parts as AsyncIterable<Uint8Array>) await this.#writeAll(part);
    });
    this.#writing.catch((error) => this.#fail(error));
    this.#pump();
    return reply;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  /**
   * Writes one command whose bytes come from `parts` (a value streamed from the RDB)
   * and resolves once every byte is written, returning the reply to come. The caller
   * must not read further from the parts' source until this resolves.
   */
  async sendStreamed(parts: AsyncIterable<Uint8Array>): Promise<{ reply: Promise<Reply> }> {
    await this.#writing;
    const reply = new Promise<Reply>((resolve, reject) => this.#replies.push({ resolve, reject }));
    reply.catch(() => {});
    const writing = (async () => {
      for await (const part of parts) await this.#writeAll(part);
    })();
    this.#writing = writing.catch((error) => this.#fail(error));
    this.#pump();
    await writing;
    return { reply };
  }

  /** Raw bytes outside the request/reply rhythm (SYNC, whose answer is not a RESP reply). */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    await this.#writing;
    await this.#writeAll(bytes);
  }

  command(args: Arg[]): Promise<Reply> {
    return this.send(args);
  }

  /** A command that must succeed; a Redis error becomes an exception. */
  async ok(args: Arg[]): Promise<Reply> {
    const reply = await this.command(args);
    if (reply instanceof RedisReplyError) {
      throw new CairnError(
        "SOURCE_UNAVAILABLE",
        `${describe(this.target)}: ${args[0]} failed: ${reply.message}`,
      );
    }
    return reply;
  }

  async #pump(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      while (this.#replies.length > 0) {
        const reply = await readReply(this.queue);
        this.#replies.shift()!.resolve(reply);
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#reading = false;
    }
  }

  #fail(error: unknown): void {
    const e = error instanceof CairnError ? error : new CairnError(
      "SOURCE_UNAVAILABLE",
      `${describe(this.target)}: connection lost (${(error as Error)?.message ?? error})`,
    );
    for (const r of this.#replies.splice(0)) r.reject(e);
  }

  /** Waits for queued writes (used before handing the socket to a raw reader). */
  flushed(): Promise<void> {
    return this.#writing;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

export async function readReply(q: ByteQueue): Promise<Reply> {
  const line = await q.readLine(1 << 20);
  if (line === null) throw new Error("connection closed by the server");
  const kind = line[0], rest = line.slice(1);
  switch (kind) {
    case "+":
      return rest;
    case "-":
      return new RedisReplyError(rest);
    case ":":
      return Number(rest);
    case "$": {
      const n = Number(rest);
      if (n < 0) return null;
      const data = await q.need(n + 2);
      return data.subarray(0, n);
    }
    case "*": {
      const n = Number(rest);
      if (n < 0) return null;
      const out: Reply[] = [];
      for (let i = 0; i < n; i++) out.push(await readReply(q));
      return out;
    }
    default:
      throw new Error(`unexpected reply from the server: ${JSON.stringify(line.slice(0, 80))}`);
  }
}

export function text(reply: Reply): string {
  if (reply instanceof Uint8Array) return new TextDecoder().decode(reply);
  if (reply instanceof RedisReplyError) throw reply;
  return String(reply);
}

/** INFO output as a map (section lines "key:value"). */
export function parseInfo(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text(reply).split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

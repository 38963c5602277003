import { CairnError } from "../../errors.ts";
import { ByteQueue } from "../../io/byte_queue.ts";
import { describe, type RedisTarget } from "./url.ts";

export type Reply = string | number | Uint8Array | null | RedisReplyError | Reply[];

export class RedisReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
  }
}

const encoder = new TextEncoder();

export type Arg = string | Uint8Array;

function asciiLength(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return -1;
  return s.length;
}

function digits(n: number): number {
  return n < 10 ? 1 : Math.floor(Math.log10(n)) + 1;
}

function putNumber(out: Uint8Array, off: number, n: number): number {
  const text = String(n);
  for (let i = 0; i < text.length; i++) out[off + i] = text.charCodeAt(i);
  return off + text.length;
}

/** Bytes of a string argument, or null when it is ASCII and can be written char by char. */
function argBytes(a: Arg): Uint8Array | null {
  if (typeof a !== "string") return a;
  return asciiLength(a) === -1 ? encoder.encode(a) : null;
}

/** Size of `$<len>\r\n<bytes>\r\n` for a bulk string of `len` bytes. */
export function bulkSize(len: number): number {
  return 1 + digits(len) + 2 + len + 2;
}

/** Writes `*<n>\r\n`; returns the next offset. */
export function putArrayHeader(out: Uint8Array, off: number, n: number): number {
  out[off++] = 0x2a; // *
  off = putNumber(out, off, n);
  out[off++] = 13, out[off++] = 10;
  return off;
}

/** Writes `$<len>\r\n` (the bulk's body and its \r\n are the caller's); returns the next offset. */
export function putBulkHeader(out: Uint8Array, off: number, len: number): number {
  out[off++] = 0x24; // $
  off = putNumber(out, off, len);
  out[off++] = 13, out[off++] = 10;
  return off;
}

function putBulk(out: Uint8Array, off: number, a: Arg, b: Uint8Array | null): number {
  const len = b ? b.length : (a as string).length;
  off = putBulkHeader(out, off, len);
  if (b) {
    out.set(b, off);
    off += len;
  } else {
    const text = a as string;
    for (let j = 0; j < len; j++) out[off++] = text.charCodeAt(j);
  }
  out[off++] = 13, out[off++] = 10;
  return off;
}

/** The encoded size of `args` as bulk strings (no array header), with their bytes. */
export function measureArgs(args: Arg[]): { size: number; bytes: (Uint8Array | null)[] } {
  const bytes = new Array<Uint8Array | null>(args.length);
  let size = 0;
  for (let i = 0; i < args.length; i++) {
    const b = bytes[i] = argBytes(args[i]);
    size += bulkSize(b ? b.length : (args[i] as string).length);
  }
  return { size, bytes };
}

/** Writes measured args as bulk strings; returns the next offset. */
export function putArgs(
  out: Uint8Array,
  off: number,
  args: Arg[],
  bytes: (Uint8Array | null)[],
): number {
  for (let i = 0; i < args.length; i++) off = putBulk(out, off, args[i], bytes[i]);
  return off;
}

/**
 * Builds one command from many arguments, each copied into a growing buffer as it
 * comes: a batch of a thousand hash fields holds no views of the chunks they were
 * read from (views that outlive a scavenge are promoted, and the old generation of
 * a five-million-field restore then grew by a hundred MiB before a full GC).
 */
export class CommandBuilder {
  #buf = new Uint8Array(64 * 1024);
  #len = 0;
  /** Arguments added since the last write(). */
  argc = 0;

  get size(): number {
    return this.#len;
  }

  add(arg: Arg): void {
    const b = argBytes(arg);
    const len = b ? b.length : (arg as string).length;
    const need = this.#len + bulkSize(len);
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#len = putBulk(this.#buf, this.#len, arg, b);
    this.argc++;
  }

  #head: Arg[] = [];
  #h: ReturnType<typeof measureArgs> = { size: 0, bytes: [] };

  /**
   * The command's encoded size with `head` arguments first, then everything added;
   * write() then puts it in place (sendPipelinedInPlace) and empties the builder.
   */
  prepare(head: Arg[]): number {
    this.#head = head;
    this.#h = measureArgs(head);
    const argc = head.length + this.argc;
    return 1 + digits(argc) + 2 + this.#h.size + this.#len;
  }

  write(out: Uint8Array, at: number): void {
    const argc = this.#head.length + this.argc;
    const off = putArgs(out, putArrayHeader(out, at, argc), this.#head, this.#h.bytes);
    out.set(this.#buf.subarray(0, this.#len), off);
    this.#len = 0;
    this.argc = 0;
  }
}

/**
 * RESP encoding of one command as an array of bulk strings, written straight into
 * one buffer (this runs once per key on a restore: no intermediate strings).
 */
export function encodeCommand(args: Arg[]): Uint8Array {
  const { size, bytes } = measureArgs(args);
  const out = new Uint8Array(1 + digits(args.length) + 2 + size);
  putArgs(out, putArrayHeader(out, 0, args.length), args, bytes);
  return out;
}

/** The in-place command buffer: a socket write's worth of pipelined commands. */
const ARENA_SIZE = 256 * 1024;
/** Arenas kept for reuse: as many as a restore's 16 MiB in flight fills. */
const SPARE_ARENAS = 64;
/** Outgoing parts smaller than this are joined into one write with their neighbours. */
const JOIN_BELOW = 16 * 1024;

/** A buffer commands are written into in place, sent in segments as it is sealed. */
class Arena {
  readonly buf = new Uint8Array(ARENA_SIZE);
  /** Bytes written in place. */
  used = 0;
  /** Bytes handed to the outbox. */
  sealed = 0;
  /** Segments handed over and not yet written to the socket. */
  pending = 0;
  /** Full: no more commands go in; reused once nothing of it is pending. */
  retired = false;
}

/** Who waits for a reply: a caller's promise, or a pipelined command's count. */
type Waiter =
  | {
    resolve: (r: Reply) => void;
    reject: (e: unknown) => void;
    tag?: undefined;
    bytes?: undefined;
  }
  | { tag: unknown; bytes: number; resolve?: undefined; reject?: undefined };

/**
 * A connection speaking RESP2 directly over TCP (or TLS): commands are written in
 * order and replies resolved in order, so callers can pipeline by not awaiting.
 */
export class RedisConnection {
  readonly target: RedisTarget;
  readonly #conn: Deno.Conn;
  readonly queue: ByteQueue;
  #writing: Promise<void> = Promise.resolve();
  /** Bytes to write, in order; an arena's segment names its arena (reused once written). */
  #outbox: Array<{ bytes: Uint8Array; arena: Arena | null }> = [];
  #spareArenas: Arena[] = [];
  #outboxBytes = 0;
  /** Pipelined commands written in place, not yet in the outbox. */
  #arena = new Arena();
  #flushScheduled = false;
  #replies: Array<Waiter> = [];
  #reading = false;
  #closed = false;
  /** Pipelined commands (sendPipelined) not yet answered, and their bytes. */
  outstanding = 0;
  outstandingBytes = 0;
  /** The first pipelined command the server refused, with its tag. */
  pipelineError: { tag: unknown; error: RedisReplyError } | null = null;
  #drainers: Array<
    { count: number; bytes: number; resolve: () => void; reject: (e: unknown) => void }
  > = [];

  private constructor(target: RedisTarget, conn: Deno.Conn) {
    this.target = target;
    this.#conn = conn;
    this.queue = new ByteQueue(socketChunks(conn));
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

  /**
   * Queues pre-encoded command bytes and returns the reply to come. Commands are
   * coalesced into large socket writes: pipelining costs one syscall per batch,
   * not one per command.
   */
  sendRaw(parts: Uint8Array[]): Promise<Reply> {
    const reply = new Promise<Reply>((resolve, reject) => this.#replies.push({ resolve, reject }));
    for (const p of parts) this.#enqueue(p);
    this.#pump();
    return reply;
  }

  #enqueue(bytes: Uint8Array): void {
    this.#sealArena(); // what was written in place goes first
    this.#outbox.push({ bytes, arena: null });
    this.#outboxBytes += bytes.length;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    // A macrotask, not a microtask: a parser awaiting buffered data yields to
    // microtasks after every key, which would send each command on its own.
    if (this.#outboxBytes >= 256 * 1024) this.#flushOutbox();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setTimeout(() => this.#flushOutbox(), 0);
    }
  }

  /**
   * Queues a command whose reply is only counted: no promise per command, which is
   * what a million-key restore would otherwise allocate. A refusal is kept in
   * `pipelineError` with `tag` (whatever names the command to a human).
   */
  sendPipelined(bytes: Uint8Array, tag: unknown): void {
    this.#counted(tag, bytes.length);
    this.#enqueue(bytes);
    this.#pump();
  }

  #counted(tag: unknown, bytes: number): void {
    this.#replies.push({ tag, bytes });
    this.outstanding++;
    this.outstandingBytes += bytes;
  }

  /** Resolves once at most `count` pipelined commands and `bytes` bytes await replies. */
  drainTo(count: number, bytes: number): Promise<void> {
    this.#flushOutbox();
    if (this.outstanding <= count && this.outstandingBytes <= bytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.#drainers.push({ count, bytes, resolve, reject }));
  }

  #wakeDrainers(): void {
    if (this.#drainers.length === 0) return;
    this.#drainers = this.#drainers.filter((d) => {
      if (this.outstanding > d.count || this.outstandingBytes > d.bytes) return true;
      d.resolve();
      return false;
    });
  }

  /**
   * Like sendPipelined, but the command is written by `writer` straight into the
   * connection's outgoing buffer: no buffer of its own per command.
   */
  sendPipelinedInPlace(
    size: number,
    writer: { write(out: Uint8Array, at: number): void },
    tag: unknown,
  ): void {
    if (size > ARENA_SIZE) {
      const own = new Uint8Array(size);
      writer.write(own, 0);
      return this.sendPipelined(own, tag);
    }
    if (this.#arena.used + size > ARENA_SIZE) this.#retireArena();
    writer.write(this.#arena.buf, this.#arena.used);
    this.#arena.used += size;
    this.#counted(tag, size);
    if (this.#arena.used === ARENA_SIZE) this.#retireArena();
    this.#scheduleFlush();
    this.#pump();
  }

  /**
   * Moves what was written in place since the last seal into the outbox. Commands
   * after it go on into the same arena: a flush (every macrotask) must not cost a
   * fresh 256 KiB buffer for the few KiB written since the last one.
   */
  #sealArena(): void {
    const a = this.#arena;
    if (a.used === a.sealed) return;
    this.#outbox.push({ bytes: a.buf.subarray(a.sealed, a.used), arena: a });
    this.#outboxBytes += a.used - a.sealed;
    a.pending++;
    a.sealed = a.used;
  }

  /**
   * Seals a full arena and takes another, a spare one when there is one. Arenas go
   * back to the spares once all their segments are written: fresh ones, each
   * surviving a scavenge or two while it waits for the socket, left a
   * five-million-field restore with a hundred MiB of dead buffers awaiting a full GC.
   */
  #retireArena(): void {
    this.#sealArena();
    const a = this.#arena;
    a.retired = true;
    if (a.pending === 0) this.#recycle(a);
    this.#arena = this.#spareArenas.pop() ?? new Arena();
  }

  #written(a: Arena): void {
    if (--a.pending === 0 && a.retired) this.#recycle(a);
  }

  #recycle(a: Arena): void {
    if (this.#spareArenas.length >= SPARE_ARENAS) return;
    a.used = a.sealed = a.pending = 0;
    a.retired = false;
    this.#spareArenas.push(a);
  }

  #flushOutbox(): void {
    this.#flushScheduled = false;
    this.#sealArena();
    if (this.#outboxBytes === 0) return;
    const parts = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    // Arena segments and large buffers are written as they are; runs of small
    // buffers of their own (single commands) are joined into one write.
    const writes: Array<{ bytes: Uint8Array; arena: Arena | null }> = [];
    let run: Uint8Array[] = [], runBytes = 0;
    const endRun = () => {
      if (run.length === 0) return;
      let joined = run[0];
      if (run.length > 1) {
        joined = new Uint8Array(runBytes);
        let off = 0;
        for (const r of run) (joined.set(r, off), off += r.length);
      }
      writes.push({ bytes: joined, arena: null });
      run = [];
      runBytes = 0;
    };
    for (const part of parts) {
      if (part.arena || part.bytes.length >= JOIN_BELOW) {
        endRun();
        writes.push(part);
      } else {
        run.push(part.bytes);
        runBytes += part.bytes.length;
      }
    }
    endRun();
    this.#writing = this.#writing.then(async () => {
      for (const w of writes) {
        await this.#writeAll(w.bytes);
        if (w.arena) this.#written(w.arena);
      }
    });
    this.#writing.catch((error) => this.#fail(error));
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
    this.#flushOutbox();
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
    this.#flushOutbox();
    await this.#writing;
    await this.#writeAll(bytes);
  }

  command(args: Arg[]): Promise<Reply> {
    const reply = this.send(args);
    this.#flushOutbox();
    return reply;
  }

  /** Sends whatever is queued now (call before waiting on a pipelined reply). */
  flush(): void {
    this.#flushOutbox();
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
        // +OK already buffered is taken synchronously: no async call per reply.
        const reply = this.queue.tryConsume(OK_LINE) ? "OK" : await readReply(this.queue);
        const waiter = this.#replies.shift()!;
        if (waiter.resolve) waiter.resolve(reply);
        else {
          this.outstanding--;
          this.outstandingBytes -= waiter.bytes;
          if (reply instanceof RedisReplyError && !this.pipelineError) {
            this.pipelineError = { tag: waiter.tag, error: reply };
          }
          this.#wakeDrainers();
        }
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
    for (const r of this.#replies.splice(0)) r.reject?.(e);
    for (const d of this.#drainers.splice(0)) d.reject(e);
  }

  /** Waits for queued writes (used before handing the socket to a raw reader). */
  flushed(): Promise<void> {
    this.#flushOutbox();
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

/** Reads smaller than this are copied out of the read buffer, which is then reused. */
const COPY_BELOW = 16 * 1024;
const READ_BUFFER = 64 * 1024;

/**
 * The socket's bytes as chunks that cost what they hold. Deno's conn.readable gives
 * every read a fresh 64 KiB buffer however few bytes arrived: a pipelined restore's
 * replies come a few bytes at a time, and those buffers (GiBs over a big restore)
 * waited for a full GC and pushed the RSS past 250 MiB. Small reads are copied out
 * and the buffer reused; a large one (a SYNC body) is handed over whole and the next
 * read gets a new buffer.
 */
function socketChunks(conn: Deno.Conn): ReadableStream<Uint8Array> {
  let buffer = new Uint8Array(READ_BUFFER);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        // A socket this side closed ends the stream, as conn.readable's does.
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return controller.close();
        }
        throw error;
      }
      if (n === null) return controller.close();
      if (n < COPY_BELOW) controller.enqueue(buffer.slice(0, n));
      else {
        controller.enqueue(buffer.subarray(0, n));
        buffer = new Uint8Array(READ_BUFFER);
      }
    },
  });
}

const OK_LINE = encoder.encode("+OK\r\n");

export async function readReply(q: ByteQueue): Promise<Reply> {
  // The reply to almost every pipelined command, taken without decoding a line.
  if (q.tryConsume(OK_LINE)) return "OK";
  const line = await q.readLine(1 << 20);
  if (line === "+OK") return "OK"; // the reply to almost every pipelined command
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

import { CairnError } from "../../errors.ts";
import { Crc64 } from "./crc64.ts";
import type { Element } from "./rdb_reader.ts";
import { RdbReader, T } from "./rdb_reader.ts";
import {
  type Arg,
  bulkSize,
  CommandBuilder,
  encodeCommand,
  measureArgs,
  putArgs,
  putArrayHeader,
  putBulkHeader,
  type RedisConnection,
  RedisReplyError,
} from "./resp.ts";

/** Values whose DUMP payload stays below this are restored with one RESTORE. */
const CAPTURE_LIMIT = 256 * 1024 * 1024;
/** Collections with more elements than this are replayed as chunked commands. */
const ELEMENT_THRESHOLD = 4096;
const MAX_IN_FLIGHT = 1024;
const MAX_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
const CHUNK_ARGS = 1000;
/** Strings larger than this stream from the artifact to the socket instead of being buffered. */
const STREAM_ABOVE = 1024 * 1024;

const encoder = new TextEncoder();

export interface ReplayResult {
  keys_restored: number;
  keys_restored_by_commands: number;
  keys_skipped_expired: number;
  functions: number;
  dbs: number[];
}

function versionBytes(version: number): Uint8Array {
  return new Uint8Array([version & 0xff, (version >> 8) & 0xff]);
}

/**
 * A RESTORE command written in place, its DUMP payload built there and its CRC-64
 * computed there: no buffer of its own per key. prepare() measures, write() fills;
 * one instance is reused for every key.
 */
export class RestoreWriter {
  #head: Arg[] = [];
  #type = 0;
  #raw: Uint8Array[] = [];
  #version = 0;
  #tail: Arg[] = [];
  #h: ReturnType<typeof measureArgs> = { size: 0, bytes: [] };
  #t: ReturnType<typeof measureArgs> = { size: 0, bytes: [] };
  #payloadSize = 0;
  #crc = new Crc64();

  /** The command's encoded size. */
  prepare(head: Arg[], type: number, raw: Uint8Array[], version: number, tail: Arg[]): number {
    this.#head = head;
    this.#type = type;
    this.#raw = raw;
    this.#version = version;
    this.#tail = tail;
    let rawSize = 0;
    for (const r of raw) rawSize += r.length;
    this.#payloadSize = 1 + rawSize + 2 + 8;
    this.#h = measureArgs(head);
    this.#t = measureArgs(tail);
    const argc = head.length + 1 + tail.length;
    return 1 + String(argc).length + 2 + this.#h.size + bulkSize(this.#payloadSize) +
      this.#t.size;
  }

  write(out: Uint8Array, at: number): void {
    const argc = this.#head.length + 1 + this.#tail.length;
    let off = putArgs(out, putArrayHeader(out, at, argc), this.#head, this.#h.bytes);
    off = putBulkHeader(out, off, this.#payloadSize);
    const start = off;
    out[off++] = this.#type;
    for (const r of this.#raw) (out.set(r, off), off += r.length);
    out[off++] = this.#version & 0xff;
    out[off++] = (this.#version >> 8) & 0xff;
    const crc = this.#crc;
    crc.hi = 0, crc.lo = 0;
    crc.update(out.subarray(start, off)).writeTo(out, off);
    off += 8;
    out[off++] = 13, out[off++] = 10;
    putArgs(out, off, this.#tail, this.#t.bytes);
    this.#raw = []; // no view of the artifact outlives the write
  }
}

/**
 * Replays an RDB into a live server as pipelined RESTORE ... REPLACE [ABSTTL]
 * commands with bounded commands and bytes in flight. Strings of any size stream
 * straight from the artifact into the socket; very large collections are written
 * as chunked RPUSH/SADD/HSET/ZADD so no value is ever held whole.
 */
export async function replay(
  conn: RedisConnection,
  reader: RdbReader,
  options: {
    signal: AbortSignal;
    now?: number;
    onKey?: (n: number) => void;
    /** Told when a collection starts and stops being replayed element by element. */
    onElementMode?: (on: boolean) => void;
    /** Every key goes into this database (a `/db` target) instead of its own. */
    intoDb?: number | null;
  },
): Promise<ReplayResult> {
  const now = options.now ?? Date.now();
  // Replies are counted, not awaited one by one: the connection keeps the first
  // refusal with its tag (a key, or a text naming the command).
  const refused = () => {
    const failure = conn.pipelineError;
    if (failure) {
      throw new CairnError(
        "SOURCE_UNAVAILABLE",
        `Restore stopped: ${
          describeTag(failure.tag)
        } was refused by the target: ${failure.error.message}`,
      );
    }
  };
  // Drain to half, not just below the limit: otherwise every new command would wait
  // for one reply and the writes would shrink to one command each.
  const drain = async () => {
    await conn.drainTo(MAX_IN_FLIGHT / 2, MAX_BYTES_IN_FLIGHT / 2);
    refused();
  };
  const full = () =>
    conn.outstanding > MAX_IN_FLIGHT || conn.outstandingBytes > MAX_BYTES_IN_FLIGHT;
  const pipe = async (bytes: Uint8Array, tag: Tag) => {
    conn.sendPipelined(bytes, tag);
    if (full()) await drain();
  };
  const send = (args: Arg[], tag: Tag) => pipe(encodeCommand(args), tag);
  // Element batches are written in place like RESTOREs: no buffer of their own each.
  const pipeInPlace = async (
    size: number,
    writer: { write(out: Uint8Array, at: number): void },
    tag: Tag,
  ) => {
    conn.sendPipelinedInPlace(size, writer, tag);
    if (full()) await drain();
  };
  // Every RESTORE, fast path or not, is written in place by this one writer. It
  // says whether the pipeline is full: the caller drains then, and only then awaits.
  const writer = new RestoreWriter();
  const restore = (
    key: Uint8Array,
    expireMs: number | null,
    tail: Arg[],
    type: number,
    raw: Uint8Array[],
  ): boolean => {
    const ttl = expireMs !== null ? String(expireMs) : "0";
    const size = writer.prepare(["RESTORE", key, ttl], type, raw, reader.version, tail);
    conn.sendPipelinedInPlace(size, writer, key);
    return full();
  };

  const result: ReplayResult = {
    keys_restored: 0,
    keys_restored_by_commands: 0,
    keys_skipped_expired: 0,
    functions: 0,
    dbs: [],
  };
  let currentDb = 0;
  const selectDb = async (own: number) => {
    const db = options.intoDb ?? own;
    if (db !== currentDb) {
      await send(["SELECT", String(db)], `SELECT ${db}`);
      currentDb = db;
    }
    if (!result.dbs.includes(db)) result.dbs.push(db);
  };

  for (let n = 0;; n++) {
    if (n % 1024 === 0) options.signal.throwIfAborted();
    // The fast path: a key whose whole entry is buffered goes out as one RESTORE
    // built straight from its bytes, with no await unless the pipeline is full.
    const fast = reader.tryKeyEntry(ELEMENT_THRESHOLD);
    if (fast) {
      if (fast.expireMs !== null && fast.expireMs <= now) {
        result.keys_skipped_expired++;
        continue;
      }
      const into = options.intoDb ?? fast.db;
      if (into !== currentDb || !result.dbs.includes(into)) await selectDb(fast.db);
      const tail = restoreTail(fast.expireMs, fast.freq, fast.idle);
      if (restore(fast.key, fast.expireMs, tail, fast.type, [fast.raw])) await drain();
      result.keys_restored++;
      options.onKey?.(result.keys_restored + result.keys_restored_by_commands);
      continue;
    }
    const e = await reader.next();
    if (!e) break;
    if (e.kind === "function") {
      await send(["FUNCTION", "LOAD", "REPLACE", e.code], "FUNCTION LOAD");
      result.functions++;
      continue;
    }
    if (e.kind !== "key") continue;
    const key = e.key;
    const name = () => printableKey(key);
    if (e.expireMs !== null && e.expireMs <= now) {
      await reader.skipValue(e.type);
      result.keys_skipped_expired++;
      continue;
    }
    await selectDb(e.db);
    const tail = restoreTail(e.expireMs, e.freq, e.idle);
    if (e.type === T.STRING) {
      const value = await reader.streamString();
      if (value.size <= STREAM_ABOVE) {
        const raw = [await value.whole()];
        if (restore(e.key, e.expireMs, tail, T.STRING, raw)) await drain();
      } else {
        await conn.drainTo(0, 0);
        refused();
        const ttl = e.expireMs !== null ? String(e.expireMs) : "0";
        await restoreStreamedString(conn, reader, value, e.key, ttl, tail, name);
      }
      result.keys_restored++;
    } else {
      const captured = await reader.captureValue(e.type, CAPTURE_LIMIT, ELEMENT_THRESHOLD);
      if ("count" in captured) {
        options.onElementMode?.(true);
        try {
          await replayElements(
            reader,
            e.type,
            captured.count,
            e.key,
            e.expireMs,
            send,
            pipeInPlace,
            name,
          );
        } finally {
          options.onElementMode?.(false);
        }
        result.keys_restored_by_commands++;
      } else {
        if (!captured.raw) {
          throw new CairnError(
            "VERIFY_FAILED",
            `Key ${name()} is larger than ${
              CAPTURE_LIMIT >> 20
            } MiB in a form that cannot be split into commands`,
          );
        }
        if (restore(e.key, e.expireMs, tail, e.type, captured.raw)) await drain();
        result.keys_restored++;
      }
    }
    options.onKey?.(result.keys_restored + result.keys_restored_by_commands);
  }
  await conn.drainTo(0, 0);
  refused();
  return result;
}

async function restoreStreamedString(
  conn: RedisConnection,
  reader: RdbReader,
  value: { size: number; chunks: () => AsyncGenerator<Uint8Array> },
  key: Uint8Array,
  ttl: string,
  tail: Arg[],
  name: () => string,
): Promise<void> {
  const payloadSize = 1 + value.size + 2 + 8;
  const head = encodeCommand(["RESTORE", key, ttl]);
  // Rewrite the array length to include the payload and the trailing arguments.
  const argc = 4 + tail.length;
  const headText = new TextDecoder().decode(head.subarray(0, head.indexOf(0x0a) + 1));
  const headStart = encoder.encode(`*${argc}\r\n`);
  const headRest = head.subarray(headText.length);
  const trailing = encodeCommand(tail).subarray(encoder.encode(`*${tail.length}\r\n`).length);
  const version = versionBytes(reader.version);
  async function* parts() {
    const crc = new Crc64();
    yield headStart;
    yield headRest;
    yield encoder.encode(`$${payloadSize}\r\n`);
    const type = new Uint8Array([T.STRING]);
    crc.update(type);
    yield type;
    for await (const chunk of value.chunks()) {
      crc.update(chunk);
      yield chunk;
    }
    crc.update(version);
    yield version;
    yield crc.bytes();
    yield encoder.encode("\r\n");
    yield trailing;
  }
  const { reply } = await conn.sendStreamed(parts());
  const answer = await reply;
  if (answer instanceof RedisReplyError) {
    throw new CairnError(
      "SOURCE_UNAVAILABLE",
      `Restore stopped: RESTORE ${name()} was refused by the target: ${answer.message}`,
    );
  }
}

async function replayElements(
  reader: RdbReader,
  type: number,
  count: number,
  key: Uint8Array,
  expireMs: number | null,
  send: (args: Arg[], tag: Tag) => Promise<void>,
  pipeInPlace: (
    size: number,
    writer: { write(out: Uint8Array, at: number): void },
    tag: Tag,
  ) => Promise<void>,
  name: () => string,
): Promise<void> {
  await send(["DEL", key], () => `DEL ${name()}`);
  let command = "";
  const batch = new CommandBuilder();
  const flush = async () => {
    if (batch.argc === 0) return;
    const verb = command;
    await pipeInPlace(batch.prepare([verb, key]), batch, () => `${verb} ${name()}`);
  };
  for await (const el of reader.elements(type, count) as AsyncGenerator<Element>) {
    switch (el.op) {
      case "push":
        command = "RPUSH";
        batch.add(el.value);
        break;
      case "member":
        command = "SADD";
        batch.add(el.value);
        break;
      case "field":
        command = "HSET";
        batch.add(el.field);
        batch.add(el.value);
        break;
      case "score":
        command = "ZADD";
        batch.add(el.score);
        batch.add(el.member);
        break;
    }
    if (batch.argc >= CHUNK_ARGS || batch.size > 4 * 1024 * 1024) await flush();
  }
  await flush();
  if (expireMs !== null) {
    await send(["PEXPIREAT", key, String(expireMs)], () => `PEXPIREAT ${name()}`);
  }
}

const TAIL_PLAIN: Arg[] = ["REPLACE"];
const TAIL_ABSTTL: Arg[] = ["REPLACE", "ABSTTL"];

/** RESTORE's options after the payload; shared arrays for the common cases. */
function restoreTail(expireMs: number | null, freq: number | null, idle: number | null): Arg[] {
  const base = expireMs !== null ? TAIL_ABSTTL : TAIL_PLAIN;
  if (freq !== null) return [...base, "FREQ", String(freq)];
  if (idle !== null) return [...base, "IDLETIME", String(idle)];
  return base;
}

/** Names a pipelined command in an error: a key stands for its RESTORE. */
type Tag = Uint8Array | string | (() => string);

function describeTag(tag: unknown): string {
  if (tag instanceof Uint8Array) return `RESTORE ${printableKey(tag)}`;
  return typeof tag === "function" ? tag() : String(tag);
}

function printableKey(key: Uint8Array): string {
  const s = new TextDecoder().decode(key.subarray(0, 200));
  return JSON.stringify(/^[\x20-\x7e]*$/.test(s) ? s : s.replace(/[^\x20-\x7e]/g, "?"));
}

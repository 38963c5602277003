import { Crc64 } from "../../src/engines/redis/crc64.ts";
import { RestoreWriter } from "../../src/engines/redis/replay.ts";
import type { Arg } from "../../src/engines/redis/resp.ts";

/**
 * A DUMP payload built the plain way (type byte, value bytes as in the RDB, RDB
 * version LE, CRC-64 LE of all before): the reference the restore's in-place
 * writer and the server's own DUMP are compared with.
 */
export function dumpPayload(type: number, raw: Uint8Array[], version: number): Uint8Array {
  let size = 0;
  for (const r of raw) size += r.length;
  const out = new Uint8Array(1 + size + 2 + 8);
  out[0] = type;
  let off = 1;
  for (const r of raw) (out.set(r, off), off += r.length);
  out[off] = version & 0xff;
  out[off + 1] = (version >> 8) & 0xff;
  out.set(new Crc64().update(out.subarray(0, off + 2)).bytes(), off + 2);
  return out;
}

/** One RESTORE as the replay writes it, in a buffer of its own. */
export function encodeRestore(
  head: Arg[],
  type: number,
  raw: Uint8Array[],
  version: number,
  tail: Arg[],
): Uint8Array {
  const writer = new RestoreWriter();
  const out = new Uint8Array(writer.prepare(head, type, raw, version, tail));
  writer.write(out, 0);
  return out;
}

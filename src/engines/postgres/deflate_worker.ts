/// <reference lib="deno.worker" />
import { constants, createDeflateRaw, type DeflateRaw } from "node:zlib";
import { adler32 } from "./adler32.ts";

/**
 * Deflates pieces of a data stream for DeflatePool, off the main thread.
 *
 * One compressor per level lives as long as the worker; each piece ends with a full
 * flush, which empties the window, so a piece's output stands alone whatever came
 * before it. A fresh compressor per piece (deflateRawSync) would leave its native
 * state to the collector, and a worker's heap is collected too rarely: RSS grew by
 * about 100 MiB a thread over a 1 GiB dump.
 */

export type DeflateRequest = { id: number; plain: Uint8Array; level: number; headroom: number };
export type DeflateReply =
  | { id: number; bytes: Uint8Array; adler: number; length: number; plain: Uint8Array }
  | { id: number; error: string };

const compressors = new Map<number, DeflateRaw>();

function compressor(level: number): DeflateRaw {
  let deflate = compressors.get(level);
  if (!deflate) {
    deflate = createDeflateRaw({ level });
    compressors.set(level, deflate);
  }
  return deflate;
}

function deflatePiece(plain: Uint8Array, level: number): Promise<Uint8Array[]> {
  const deflate = compressor(level);
  const parts: Uint8Array[] = [];
  const onData = (part: Uint8Array) => parts.push(part);
  deflate.on("data", onData);
  return new Promise((resolve, reject) => {
    deflate.once("error", reject);
    deflate.write(plain);
    deflate.flush(constants.Z_FULL_FLUSH, () => {
      deflate.off("data", onData);
      deflate.off("error", reject);
      resolve(parts);
    });
  });
}

// Pieces are taken one at a time: the compressor's output must not interleave.
let queue = Promise.resolve();

self.onmessage = (event: MessageEvent<DeflateRequest>) => {
  const { id, plain, level, headroom } = event.data;
  queue = queue.then(async () => {
    try {
      const parts = await deflatePiece(plain, level);
      // One buffer, handed over rather than copied, with room in front for the
      // chunk header the main thread writes: it then copies nothing.
      const bytes = new Uint8Array(headroom + parts.reduce((n, p) => n + p.length, 0));
      let at = headroom;
      for (const part of parts) {
        bytes.set(part, at);
        at += part.length;
      }
      self.postMessage(
        { id, bytes, adler: adler32(plain), length: plain.length, plain } satisfies DeflateReply,
        [bytes.buffer, plain.buffer as ArrayBuffer],
      );
    } catch (error) {
      self.postMessage({ id, error: String(error) } satisfies DeflateReply);
    }
  });
};

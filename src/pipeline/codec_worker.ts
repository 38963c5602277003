/// <reference lib="deno.worker" />
/**
 * The codec off the main thread (see offthread.ts, which starts it): one worker runs
 * one pass, encode or decode, through codec.ts, hashing the bytes going in and the
 * bytes coming out. A throw from node:zlib's decoder that no handler catches (Deno
 * 2.9.6 throws "Data corruption detected" from a tick callback) ends up in this
 * worker's global error handler instead of ending the daemon: the pass is reported as
 * failed, and the input is still read to its end so its sha256 can tell damaged
 * stored bytes from any other failure.
 */
import { createHash } from "node:crypto";
import { CairnError } from "../errors.ts";
import { decodeAll, encodeAll } from "./codec.ts";
import type { CodecReply, CodecRequest } from "./offthread.ts";

const post = (reply: CodecReply, transfer: Transferable[] = []) =>
  self.postMessage(reply, transfer);

/** Chunks sent to the parent and not yet taken by its consumer (flow control). */
const WINDOW = 4;

let failed: { code: string; message: string } | null = null;
/**
 * Ends the waits of the output loop on a failure. Not a promise raced against each
 * read: every `race` with a promise that never settles stays attached to it, and
 * kept each chunk it raced alive (200 MiB of a 200 MiB artifact).
 */
let onFailure: () => void = () => {};

function fail(error: unknown, direction: "encode" | "decode"): void {
  if (failed) return;
  const e = error as Error;
  failed = error instanceof CairnError
    ? { code: error.code, message: error.message }
    : direction === "decode"
    ? {
      code: "CHECKSUM_MISMATCH",
      message: `The stored bytes cannot be decoded: ${e?.message ?? String(error)}`,
    }
    : { code: "INTERNAL", message: `Encoding failed: ${e?.message ?? String(error)}` };
  onFailure();
}

// Input: chunks from the parent, queued until the codec pulls them.
const queue: Uint8Array[] = [];
let ended = false;
let waiters: Array<() => void> = [];
function wake(): void {
  const woken = waiters;
  waiters = [];
  for (const w of woken) w();
}
const inputHash = createHash("sha256");
let inputSize = 0;

async function nextInput(): Promise<Uint8Array | null> {
  while (queue.length === 0 && !ended) await new Promise<void>((resolve) => waiters.push(resolve));
  const chunk = queue.shift();
  if (chunk === undefined) return null;
  inputHash.update(chunk);
  inputSize += chunk.byteLength;
  post({ type: "ack" });
  return chunk;
}

let credit = WINDOW;
let creditWaiter: () => void = () => {};

async function run(start: Extract<CodecRequest, { type: "start" }>): Promise<void> {
  const { direction } = start;
  self.addEventListener("error", (event) => {
    event.preventDefault();
    fail(event.error ?? new Error(event.message), direction);
  });
  self.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    fail(event.reason, direction);
  });
  const input = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = await nextInput();
      if (chunk === null) controller.close();
      else controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  const outputHash = createHash("sha256");
  let outputSize = 0;
  try {
    const coded = direction === "decode"
      ? await decodeAll(input, start.transforms, start.identities)
      : await encodeAll(input, start.transforms);
    const reader = coded.getReader();
    // A throw outside any handler may leave a read pending forever: cancel ends it.
    onFailure = () => {
      reader.cancel().catch(() => {});
      creditWaiter();
    };
    // Output goes out in buffers of start.chunk bytes, each transferred (not copied):
    // a message costs tens of microseconds, a transfer nothing.
    let batch = new Uint8Array(start.chunk);
    let used = 0;
    const send = async (last: boolean) => {
      while (credit === 0 && !failed) {
        await new Promise<void>((resolve) => creditWaiter = resolve);
      }
      if (failed) return;
      credit--;
      const data = used === batch.byteLength ? batch : batch.slice(0, used);
      post({ type: "chunk", data }, [data.buffer as ArrayBuffer]);
      batch = last ? batch : new Uint8Array(start.chunk);
      used = 0;
    };
    for (;;) {
      const next = await reader.read();
      if (failed) break;
      if (next.done) {
        if (used > 0) await send(true);
        break;
      }
      const chunk = next.value;
      outputHash.update(chunk);
      outputSize += chunk.byteLength;
      let at = 0;
      while (at < chunk.byteLength && !failed) {
        const n = Math.min(batch.byteLength - used, chunk.byteLength - at);
        batch.set(chunk.subarray(at, at + n), used);
        used += n;
        at += n;
        if (used === batch.byteLength) await send(false);
      }
      if (failed) break;
    }
  } catch (error) {
    fail(error, direction);
  }
  // The input is read to its end whatever happened, for its sha256.
  while ((await nextInput()) !== null) { /* hashed by nextInput */ }
  const inputDigest = { size: inputSize, sha256: inputHash.digest("hex") };
  if (failed) post({ type: "done", input: inputDigest, error: failed });
  else {
    post({
      type: "done",
      input: inputDigest,
      output: { size: outputSize, sha256: outputHash.digest("hex") },
    });
  }
}

self.onmessage = (event: MessageEvent<CodecRequest>) => {
  const m = event.data;
  switch (m.type) {
    case "start":
      run(m);
      break;
    case "chunk":
      queue.push(m.data);
      wake();
      break;
    case "end":
      ended = true;
      wake();
      break;
    case "credit":
      credit++;
      creditWaiter();
      break;
  }
};

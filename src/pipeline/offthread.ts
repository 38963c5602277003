/**
 * One encode or decode pass run in a worker (codec_worker.ts), with the sha256 and
 * size of the bytes going in and coming out computed there too. Two reasons:
 * - zstd at level 3 costs about 0.9 s of CPU per 200 MiB here, and decoding plus two
 *   sha256 passes about 0.5 s: off the main thread they overlap with the engine's own
 *   work (an RDB parse, a file write) instead of adding to it.
 * - node:zlib's zstd decoder under Deno 2.9.6 throws some damage errors ("Data
 *   corruption detected", "Restored data doesn't match checksum") from a tick
 *   callback, outside any handler. In a worker such a throw fails the pass, not the
 *   daemon, so unproven stored bytes may be decoded there while they are hashed: one
 *   read of the artifact instead of a check pass and then a decode pass.
 *
 * Flow control both ways: at most WINDOW chunks are in flight to the worker and from
 * it, so memory stays at a few chunks whatever the artifact's size or ratio.
 */
import { CairnError, type ErrorCode } from "../errors.ts";
import type { Transform } from "./transforms.ts";

export interface Digest {
  size: number;
  sha256: string;
}

/** Messages to the worker. */
export type CodecRequest =
  | {
    type: "start";
    direction: "encode" | "decode";
    transforms: Transform[];
    identities: string[];
    /** The size of the chunks handed back (the last may be smaller). */
    chunk: number;
  }
  | { type: "chunk"; data: Uint8Array }
  | { type: "end" }
  | { type: "credit" };

/** Messages from the worker. */
export type CodecReply =
  | { type: "ack" }
  | { type: "chunk"; data: Uint8Array }
  | {
    type: "done";
    input: Digest;
    output?: Digest;
    error?: { code: string; message: string };
  };

export interface PassResult {
  /** The input's size and sha256: the input is read to its end even when the codec fails. */
  input: Digest;
  /** The output's, when the codec finished. */
  output?: Digest;
  /** Why the codec failed (damaged bytes, no matching identity, ...). */
  error?: CairnError;
}

export interface CodecPass {
  /**
   * The encoded or decoded bytes, in chunks of `chunk` bytes. On a codec failure it
   * errors with that failure once the input has been read to its end.
   */
  output: ReadableStream<Uint8Array>;
  /**
   * Settles once the input has been read to its end. Rejects only with the input's
   * own failure (as it is), a cancel of the output, or a worker that could not run.
   */
  result: Promise<PassResult>;
  /** Ends the pass at once (worker terminated, input cancelled), whoever reads the output. */
  cancel: (reason: unknown) => void;
}

/**
 * Artifacts smaller than this stay on the main thread (decoded after their check
 * pass, encoded in line): a worker takes 130-350 ms to start here (node:zlib and
 * node:crypto load in it), longer than such an artifact's whole pass.
 */
export const OFF_THREAD_MIN_BYTES = 4 << 20;

const WINDOW = 4;
/**
 * The size of the buffers sent each way. A message costs tens of microseconds, so not
 * small ones; but not MiB ones either: each isolate frees dead buffers only when it
 * collects garbage, which it does by the count of small objects made, not by bytes, so
 * with 1 MiB buffers 45-50 MiB of them waited in each isolate (peak RSS 185 MiB for a
 * restore's scratch copy of a 200 MiB RDB, 117 MiB with 128 KiB; 88 MiB on one thread).
 */
export const PASS_CHUNK = 128 * 1024;

/**
 * Runs `input` through the transforms (encode: in order; decode: reversed) in a
 * fresh worker. Every input chunk is copied before it is handed over, except with
 * `ownInput` (the caller guarantees no one else holds the chunks), where a chunk that
 * owns its whole buffer is transferred instead.
 */
export function codecPass(
  input: ReadableStream<Uint8Array>,
  direction: "encode" | "decode",
  transforms: Transform[],
  options: { identities?: string[]; chunk?: number; ownInput?: boolean } = {},
): CodecPass {
  const worker = new Worker(new URL("./codec_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const reader = input.getReader();
  let over = false;
  let inFlight = 0;
  let ackWaiter: () => void = () => {};
  const chunks: Uint8Array[] = [];
  let end: { error?: CairnError } | null = null;
  let outputFailure: unknown = null;
  let pullWaiter: () => void = () => {};
  let settle!: { resolve: (r: PassResult) => void; reject: (e: unknown) => void };
  const result = new Promise<PassResult>((resolve, reject) => settle = { resolve, reject });
  result.catch(() => {});

  const stop = (error: unknown) => {
    if (over) return;
    over = true;
    worker.terminate();
    reader.cancel(error).catch(() => {});
    outputFailure ??= error;
    settle.reject(error);
    ackWaiter();
    pullWaiter();
  };

  worker.onmessage = (event: MessageEvent<CodecReply>) => {
    const m = event.data;
    if (m.type === "ack") {
      inFlight--;
      ackWaiter();
    } else if (m.type === "chunk") {
      chunks.push(m.data);
      pullWaiter();
    } else {
      over = true;
      worker.terminate();
      const error = m.error
        ? new CairnError(m.error.code as ErrorCode, m.error.message)
        : undefined;
      end = { error };
      settle.resolve({ input: m.input, output: m.output, error });
      pullWaiter();
    }
  };
  worker.onerror = (event) => {
    // Only a worker that cannot run gets here: the codec's own throws are caught there.
    event.preventDefault();
    stop(new CairnError("INTERNAL", `The codec worker failed: ${event.message}`));
  };

  // Input goes over in buffers of PASS_CHUNK bytes: small socket chunks one message
  // each would cost more in messages and acknowledgements than the copy.
  let batch = new Uint8Array(PASS_CHUNK);
  let used = 0;
  const send = async (data: Uint8Array) => {
    while (inFlight >= WINDOW && !over) {
      await new Promise<void>((resolve) => ackWaiter = resolve);
    }
    if (over) return;
    inFlight++;
    worker.postMessage({ type: "chunk", data } satisfies CodecRequest, [
      data.buffer as ArrayBuffer,
    ]);
  };
  const flush = async () => {
    if (used === 0) return;
    const data = used === batch.byteLength ? batch : batch.slice(0, used);
    batch = new Uint8Array(PASS_CHUNK);
    used = 0;
    await send(data);
  };
  const feed = async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (over) return;
        if (done) {
          await flush();
          if (!over) worker.postMessage({ type: "end" } satisfies CodecRequest);
          return;
        }
        const whole = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
        if (options.ownInput && whole && value.byteLength >= PASS_CHUNK / 4) {
          await flush();
          await send(value);
          continue;
        }
        let at = 0;
        while (at < value.byteLength) {
          const n = Math.min(batch.byteLength - used, value.byteLength - at);
          batch.set(value.subarray(at, at + n), used);
          used += n;
          at += n;
          if (used === batch.byteLength) await flush();
        }
      }
    } catch (error) {
      // The input's own failure (an engine's, a repository's) is reported as it is.
      stop(error);
    }
  };

  worker.postMessage(
    {
      type: "start",
      direction,
      transforms,
      identities: options.identities ?? [],
      chunk: options.chunk ?? PASS_CHUNK,
    } satisfies CodecRequest,
  );
  feed();

  const output = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (chunks.length === 0 && end === null && outputFailure === null) {
        await new Promise<void>((resolve) => pullWaiter = resolve);
      }
      const chunk = chunks.shift();
      if (chunk !== undefined) {
        controller.enqueue(chunk);
        if (!over) worker.postMessage({ type: "credit" } satisfies CodecRequest);
      } else if (outputFailure !== null) controller.error(outputFailure);
      else if (end?.error) controller.error(end.error);
      else controller.close();
    },
    cancel(reason) {
      stop(reason ?? new CairnError("CANCELLED", "The pass was cancelled"));
    },
  }, { highWaterMark: 0 });
  return { output, result, cancel: stop };
}

/// <reference lib="deno.worker" />
import { CairnError, type ErrorCode } from "../../errors.ts";
import { crc64OfRange } from "./crc_file.ts";

/** Checksums one piece of a file for crc64OfFile, off the main thread. */

export type CrcRangeRequest = { path: string; start: number; end: number };

export type CrcRangeReply =
  | { hi: number; lo: number }
  | { bytes: number }
  | { error: string; code: ErrorCode };

/** Progress goes back in pieces this large, not per read. */
const REPORT_EVERY = 32 * 1024 * 1024;

self.onmessage = async (event: MessageEvent<CrcRangeRequest>) => {
  const { path, start, end } = event.data;
  let pending = 0;
  try {
    const crc = await crc64OfRange(path, start, end, {
      onBytes: (n) => {
        pending += n;
        if (pending >= REPORT_EVERY) {
          self.postMessage({ bytes: pending } satisfies CrcRangeReply);
          pending = 0;
        }
      },
    });
    if (pending) self.postMessage({ bytes: pending } satisfies CrcRangeReply);
    self.postMessage({ hi: crc.hi, lo: crc.lo } satisfies CrcRangeReply);
  } catch (error) {
    self.postMessage(
      {
        error: error instanceof Error ? error.message : String(error),
        code: error instanceof CairnError ? error.code : "SOURCE_UNAVAILABLE",
      } satisfies CrcRangeReply,
    );
  }
};

import { ByteQueue } from "../byte_queue.ts";
import {
  BLOCK,
  decodeHeader,
  isZeroBlock,
  paddingFor,
  parsePax,
  type TarHeader,
} from "./tar_format.ts";

export interface TarEntry {
  header: TarHeader;
  /** The entry's bytes; consume it (or not) before asking for the next entry. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * Yields the entries of an (uncompressed) tar stream one at a time, never holding
 * a file body in memory. Understands ustar, PAX and GNU long names.
 */
export async function* readTar(stream: ReadableStream<Uint8Array>): AsyncGenerator<TarEntry> {
  const q = new ByteQueue(stream);
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  try {
    for (;;) {
      const block = await q.readExact(BLOCK);
      if (block === null) return;
      if (isZeroBlock(block)) {
        await q.drain();
        return;
      }
      const { header, typeflag } = decodeHeader(block);
      if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
        const data = (await q.readExact(header.size)) ?? new Uint8Array();
        await q.skip(paddingFor(header.size));
        if (typeflag === "x") pax = { ...pax, ...parsePax(data) };
        else if (typeflag === "L") longName = new TextDecoder().decode(data).replace(/\0+$/, "");
        else if (typeflag === "K") longLink = new TextDecoder().decode(data).replace(/\0+$/, "");
        continue;
      }
      const full: TarHeader = {
        ...header,
        path: pax.path ?? longName ?? header.path,
        linkpath: pax.linkpath ?? longLink ?? header.linkpath,
        size: pax.size !== undefined ? Number(pax.size) : header.size,
        mtime: pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : header.mtime,
      };
      pax = {};
      longName = longLink = null;
      const dataSize = full.type === "file" || full.type === "other" ? full.size : 0;
      let left = dataSize;
      const body = {
        async *[Symbol.asyncIterator]() {
          while (left > 0) {
            const chunk = await q.readSome(Math.min(left, 1 << 20));
            left -= chunk.byteLength;
            yield chunk;
          }
        },
      };
      yield { header: full, body };
      if (left > 0) await q.skip(left);
      await q.skip(paddingFor(dataSize));
    }
  } catch (error) {
    await q.cancel(error).catch(() => {});
    throw error;
  }
}

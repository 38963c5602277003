import assert from "node:assert/strict";
import { ByteQueue } from "../../src/io/byte_queue.ts";
import { eofBody, markPrefixAtEnd, searcher } from "../../src/engines/redis/replication.ts";

const enc = new TextEncoder();
const MARK = "0123456789abcdef0123456789abcdef01234567";

/** The body eofBody yields when the socket delivers `chunks`, and whether it closed the connection. */
async function body(chunks: Uint8Array[]): Promise<{ bytes: Uint8Array; closed: boolean }> {
  let closed = false;
  const conn = {
    queue: new ByteQueue(ReadableStream.from(chunks)),
    close: () => void (closed = true),
  };
  const parts: number[] = [];
  for await (const chunk of eofBody(conn as never, MARK)) parts.push(...chunk);
  return { bytes: new Uint8Array(parts), closed };
}

function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) (parts.push(bytes.slice(from, to)), from = to);
  return parts.filter((p) => p.length > 0);
}

Deno.test("eofBody: the RDB ends at the mark wherever the reads split it", async () => {
  // The payload itself ends like the mark begins ("0123"): a false alarm to sort out.
  const rdb = enc.encode("REDIS0011...payload...0123");
  const wire = new Uint8Array([...rdb, ...enc.encode(MARK), ...enc.encode("+PING\r\n")]);
  for (let a = 1; a < wire.length; a++) {
    for (const b of [a + 1, a + 3, a + 41]) {
      const { bytes, closed } = await body(cut(wire, b < wire.length ? [a, b] : [a]));
      assert.deepEqual(bytes, rdb, `split at ${a} and ${b}`);
      assert.ok(closed);
    }
  }
});

Deno.test("eofBody: a connection that ends before the mark is an error, not a short RDB", async () => {
  await assert.rejects(
    () => body([enc.encode("REDIS0011"), enc.encode(MARK.slice(0, 20))]),
    /end mark/,
  );
});

Deno.test("markPrefixAtEnd: finds the longest proper start of the mark at the end", () => {
  const m = enc.encode("abcab");
  assert.equal(markPrefixAtEnd(enc.encode("xxxabca"), m), 4);
  assert.equal(markPrefixAtEnd(enc.encode("xxxab"), m), 2);
  assert.equal(markPrefixAtEnd(enc.encode("xxxb"), m), 0);
  assert.equal(markPrefixAtEnd(enc.encode("abcab"), m), 2); // the whole mark is not a proper start
  assert.equal(markPrefixAtEnd(new Uint8Array(), m), 0);
});

Deno.test("searcher: the first occurrence, as a naive scan finds it, in text full of near misses", () => {
  const naive = (h: Uint8Array, n: Uint8Array) => {
    outer: for (let i = 0; i <= h.length - n.length; i++) {
      for (let j = 0; j < n.length; j++) if (h[i + j] !== n[j]) continue outer;
      return i;
    }
    return -1;
  };
  const mark = enc.encode(MARK);
  const find = searcher(mark);
  // Hex digits and pieces of the mark everywhere: every shift and partial match is taken.
  const alphabet = enc.encode("0123456789abcdef");
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 8;
  for (let round = 0; round < 300; round++) {
    const h = Uint8Array.from({ length: 40 + (random() % 400) }, () => alphabet[random() % 16]);
    if (round % 3 === 0) h.set(mark.subarray(0, 1 + (random() % 39)), random() % (h.length - 40));
    if (round % 2 === 0) h.set(mark, random() % (h.length - 39));
    assert.equal(find(h), naive(h, mark), `round ${round}`);
  }
  assert.equal(find(mark), 0);
  assert.equal(find(mark.subarray(1)), -1);
  assert.equal(find(new Uint8Array()), -1);
  assert.equal(searcher(enc.encode("aa"))(enc.encode("baaa")), 1);
});

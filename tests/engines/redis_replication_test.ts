import assert from "node:assert/strict";
import { ByteQueue } from "../../src/engines/byte_queue.ts";
import { eofBody, markPrefixAtEnd } from "../../src/engines/redis/replication.ts";

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

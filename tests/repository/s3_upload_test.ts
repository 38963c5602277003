import assert from "node:assert/strict";
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { uploadStream } from "../../src/repository/s3_upload.ts";
import { startS3 } from "../helpers/s3.ts";

const PART = 5 * 1024 * 1024; // the smallest part S3 accepts

/** A client that records each command it sends and how many parts were in flight. */
function recordingClient(endpoint: string, options: { failPart?: number } = {}) {
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  const seen = {
    commands: [] as string[],
    inFlight: 0,
    maxInFlight: 0,
    buffers: new Set(),
    putBuffer: 0,
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Body?: Uint8Array; PartNumber?: number };
      seen.commands.push(context.commandName!);
      if (context.commandName === "PutObjectCommand") {
        seen.putBuffer = input.Body!.buffer.byteLength;
      }
      if (context.commandName !== "UploadPartCommand") return next(args);
      seen.buffers.add(input.Body!.buffer);
      seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
      try {
        if (input.PartNumber === options.failPart) throw new Error("the network died");
        return await next(args);
      } finally {
        seen.inFlight--;
      }
    },
    { step: "initialize", name: "record" },
  );
  return { client, seen };
}

/** `size` bytes of a repeating pattern, in chunks of varying length. */
function patterned(size: number, chunk = 700_001): { stream: ReadableStream<Uint8Array> } {
  let sent = 0;
  let turn = 0;
  return {
    stream: new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= size) return c.close();
        const n = Math.min(size - sent, chunk + (turn++ % 3) * 4093);
        const bytes = new Uint8Array(n);
        for (let i = 0; i < n; i++) bytes[i] = (sent + i) % 251;
        sent += n;
        c.enqueue(bytes);
      },
    }),
  };
}

/** Uploads in parts of PART, two in flight, as the tests below all do. */
function upload(
  client: S3Client,
  key: string,
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): Promise<void> {
  return uploadStream({ client, bucket: "up", key }, body, {
    partSize: PART,
    queueSize: 2,
    signal,
  });
}

async function readBack(client: S3Client, key: string): Promise<Uint8Array> {
  const out = await client.send(new GetObjectCommand({ Bucket: "up", Key: key }));
  return await out.Body!.transformToByteArray();
}

function assertPattern(bytes: Uint8Array, size: number): void {
  assert.equal(bytes.length, size);
  for (let i = 0; i < size; i++) {
    if (bytes[i] !== i % 251) assert.fail(`byte ${i} is ${bytes[i]}, not ${i % 251}`);
  }
}

Deno.test("s3 upload: what fits one part is one PutObject; an empty body is an empty object", async () => {
  const s3 = await startS3(["up"]);
  try {
    for (const size of [0, 1, PART - 1, PART]) {
      const { client, seen } = recordingClient(s3.endpoint);
      await upload(client, `one-${size}`, patterned(size).stream);
      assert.deepEqual(seen.commands, ["PutObjectCommand"], `${size} bytes`);
      if (size <= 1) assert.ok(seen.putBuffer <= 64 * 1024, "a small put takes a small buffer");
      assertPattern(await readBack(client, `one-${size}`), size);
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 upload: a longer body goes in parts, in order, through at most queue + 1 buffers", async () => {
  const s3 = await startS3(["up"]);
  try {
    for (const size of [PART + 1, 2 * PART, 6 * PART + 12_345]) {
      const { client, seen } = recordingClient(s3.endpoint);
      await upload(client, `many-${size}`, patterned(size).stream);
      const parts = Math.ceil(size / PART);
      assert.deepEqual(seen.commands, [
        "CreateMultipartUploadCommand",
        ...Array(parts).fill("UploadPartCommand"),
        "CompleteMultipartUploadCommand",
      ]);
      assert.ok(seen.maxInFlight <= 2, `${seen.maxInFlight} parts in flight`);
      assert.ok(seen.buffers.size <= 3, `${seen.buffers.size} part buffers`);
      assertPattern(await readBack(client, `many-${size}`), size);
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 upload: a failed part or source aborts the upload and leaves no object", async () => {
  const s3 = await startS3(["up"]);
  try {
    const { client, seen } = recordingClient(s3.endpoint, { failPart: 3 });
    await assert.rejects(
      upload(client, "part-fails", patterned(8 * PART).stream),
      /the network died/,
    );
    assert.equal(seen.commands.at(-1), "AbortMultipartUploadCommand");
    assert.ok(seen.commands.filter((c) => c === "UploadPartCommand").length < 8);

    let chunks = 0;
    const dying = patterned(3 * PART).stream.pipeThrough(
      new TransformStream({
        transform(chunk, c) {
          if (++chunks === 18) c.error(new Error("the dump died")); // in the third part
          else c.enqueue(chunk);
        },
      }),
    );
    const second = recordingClient(s3.endpoint);
    await assert.rejects(
      upload(second.client, "source-fails", dying),
      /the dump died/,
    );
    for (const key of ["part-fails", "source-fails"]) {
      await assert.rejects(
        client.send(new HeadObjectCommand({ Bucket: "up", Key: key })),
        (e: Error) => e.name === "NotFound",
      );
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 upload: an abort stops a source that waits for bytes and stores nothing", async () => {
  const s3 = await startS3(["up"]);
  try {
    const { client } = recordingClient(s3.endpoint);
    let sent = 0;
    const stalls = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 2 * PART) return new Promise(() => {}); // a dump that hangs
        sent += 1 << 20;
        c.enqueue(new Uint8Array(1 << 20));
      },
    });
    const controller = new AbortController();
    const stalled = upload(client, "stalled", stalls, controller.signal);
    setTimeout(() => controller.abort(new Error("job cancelled")), 300);
    await assert.rejects(stalled, /job cancelled|abort/i);
    await assert.rejects(
      client.send(new HeadObjectCommand({ Bucket: "up", Key: "stalled" })),
      (e: Error) => e.name === "NotFound",
    );
  } finally {
    await s3.stop();
  }
});

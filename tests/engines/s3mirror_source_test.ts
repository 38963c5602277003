/**
 * The mirror source on the `minio` package, against the real s3rver (behind the test
 * front that answers `encoding-type=url` listings as S3 does), and fault proxies for
 * what the server never does.
 */
import assert from "node:assert/strict";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { ClientConfig } from "../../src/config/schema.ts";
import { S3Source } from "../../src/engines/s3mirror/source.ts";
import { classifyS3 } from "../../src/s3/errors.ts";
import { S3_ATTEMPTS } from "../../src/s3/retry.ts";
import { reencodeListing } from "../helpers/s3_listing.ts";
import { startS3 } from "../helpers/s3.ts";
import { startS3Proxy } from "../helpers/s3_proxy.ts";

const noSleep = () => Promise.resolve();

function config(endpoint: string, bucket: string, extra: Partial<S3Config> = {}): S3Config {
  return {
    kind: "s3",
    endpoint,
    region: "us-east-1",
    bucket,
    prefixes: [],
    access_key_id: "S3RVER",
    secret_access_key: "S3RVER",
    remove: false,
    concurrency: 8,
    force_path_style: true,
    max_delete_percent: 50,
    ...extra,
  };
}
type S3Config = Extract<ClientConfig, { kind: "s3" }>;

function sdk(endpoint: string) {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
}

Deno.test("s3 test front: a listing asked for with encoding-type=url has its keys encoded as S3 encodes them", () => {
  const xml = '<?xml version="1.0"?><ListBucketResult xmlns="x"><Name>b</Name>' +
    "<Prefix>dir/</Prefix><Contents><Key>dir/a+b c%d&amp;e&#xA;(1)*!'ü</Key><Size>1</Size></Contents>" +
    "</ListBucketResult>";
  assert.equal(
    reencodeListing(xml),
    '<?xml version="1.0"?><ListBucketResult xmlns="x"><EncodingType>url</EncodingType><Name>b</Name>' +
      "<Prefix>dir/</Prefix><Contents><Key>dir/a%2Bb+c%25d%26e%0A%281%29%2A%21%27%C3%BC</Key><Size>1</Size></Contents>" +
      "</ListBucketResult>",
  );
});

Deno.test("s3 source: keys with +, %, spaces, unicode and control characters list, read and stat as they are", async () => {
  const s3 = await startS3(["source-keys"]);
  try {
    const keys = ["dir/odd key+ü%.bin", "dir/100% done", "dir/a+b", "dir/tab\there", "dir/x"];
    for (const [i, key] of keys.entries()) {
      await sdk(s3.endpoint).send(
        new PutObjectCommand({ Bucket: "source-keys", Key: key, Body: new Uint8Array(i + 1) }),
      );
    }
    const source = new S3Source(config(s3.endpoint, "source-keys"));
    const listed = await Array.fromAsync(source.list("dir/"));
    assert.deepEqual(listed.map((o) => o.key), [...keys].sort());
    for (const [i, key] of keys.entries()) {
      const o = listed.find((l) => l.key === key)!;
      assert.equal(o.size, i + 1);
      assert.match(o.etag, /^[0-9a-f]{32}$/);
      const got = await source.get(key);
      assert.equal((await new Response(got.body).arrayBuffer()).byteLength, i + 1);
      assert.equal(got.etag, o.etag);
      assert.equal(got.size, i + 1);
      assert.deepEqual(await source.head(key), { etag: o.etag, size: i + 1 });
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 source: listing pages follow one another by marker, and the next is asked for before the consumer needs it", async () => {
  const s3 = await startS3(["source-pages"]);
  try {
    const c = sdk(s3.endpoint);
    for (let i = 0; i < 2100; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          c.send(
            new PutObjectCommand({
              Bucket: "source-pages",
              Key: `p/${String(i + j).padStart(4, "0")} +`,
              Body: "x",
            }),
          )),
      );
    }
    const proxy = await startS3Proxy(s3.endpoint, () => null);
    try {
      const source = new S3Source(config(proxy.endpoint, "source-pages"));
      const keys: string[] = [];
      for await (const o of source.list("p/")) {
        keys.push(o.key);
        if (keys.length === 1) {
          // The first page is in hand: the second is already asked for.
          await new Promise((r) => setTimeout(r, 200));
          assert.equal(proxy.seen.filter((s) => s.startsWith("GET /source-pages?")).length, 2);
        }
      }
      assert.equal(keys.length, 2100);
      assert.equal(new Set(keys).size, 2100);
      assert.equal(keys[2099], "p/2099 +");
      const lists = proxy.seen.filter((s) => s.startsWith("GET /source-pages?"));
      assert.equal(lists.length, 3);
      assert.ok(lists.every((s) => s.includes("encoding-type=url")), lists.join("\n"));
    } finally {
      await proxy.stop();
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 source: a key with '.' or '..' segments is requested as written, never resolved to another object", async () => {
  const s3 = await startS3(["source-dots"]);
  try {
    const sent: string[] = [];
    const proxy = await startS3Proxy(s3.endpoint, (request) => {
      // The path as it arrived on the wire (Deno.serve keeps it as sent).
      const path = request.url.replace(/^https?:\/\/[^/]+/, "").replace(/\?.*$/, "");
      sent.push(`${request.method} ${path}`);
      return new Response(null, {
        status: 200,
        headers: {
          etag: '"0123456789abcdef0123456789abcdef"',
          "content-length": "0",
          "x-path": path,
        },
      });
    });
    try {
      const source = new S3Source(config(proxy.endpoint, "source-dots"));
      for (const key of ["a/../b", "./x", "a/.", "a/./b"]) {
        await source.head(key);
        const got = await source.get(key);
        await got.body.cancel();
      }
      assert.deepEqual(sent, [
        "HEAD /source-dots/a/../b",
        "GET /source-dots/a/../b",
        "HEAD /source-dots/./x",
        "GET /source-dots/./x",
        "HEAD /source-dots/a/.",
        "GET /source-dots/a/.",
        "HEAD /source-dots/a/./b",
        "GET /source-dots/a/./b",
      ]);
    } finally {
      await proxy.stop();
    }
  } finally {
    await s3.stop();
  }
});

/** A proxy answering the first `failures` requests itself with `status` and S3's error body. */
async function faulty(target: string, failures: number, status: number, code: string) {
  let seen = 0;
  const proxy = await startS3Proxy(target, async (request) => {
    if (++seen > failures) return null;
    await request.body?.cancel();
    return new Response(
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>try later</Message></Error>`,
      { status, headers: { "content-type": "application/xml" } },
    );
  });
  return { ...proxy, requests: () => seen };
}

Deno.test("s3 source: SlowDown and 5xx are retried until the server answers; a 403 is not retried; every call shares the one policy", async () => {
  const s3 = await startS3(["source-retry"]);
  try {
    await sdk(s3.endpoint).send(
      new PutObjectCommand({ Bucket: "source-retry", Key: "k", Body: "abc" }),
    );
    for (const [status, code] of [[503, "SlowDown"], [500, "InternalError"]] as const) {
      const proxy = await faulty(s3.endpoint, 3, status, code);
      try {
        const source = new S3Source(config(proxy.endpoint, "source-retry"), noSleep);
        assert.deepEqual((await Array.fromAsync(source.list(""))).map((o) => o.key), ["k"]);
        assert.equal(proxy.requests(), 4, `${code}: three failures, then the page`);
      } finally {
        await proxy.stop();
      }
    }
    const always = await faulty(s3.endpoint, 100, 503, "SlowDown");
    try {
      const source = new S3Source(config(always.endpoint, "source-retry"), noSleep);
      const error = await source.get("k").catch((e) => e);
      assert.equal(error.code, "SOURCE_UNAVAILABLE");
      assert.match(error.message, /failed while reading k: HTTP 503/);
      assert.equal(always.requests(), S3_ATTEMPTS, "five attempts, then the error");
    } finally {
      await always.stop();
    }
    const denied = await faulty(s3.endpoint, 100, 403, "AccessDenied");
    try {
      const source = new S3Source(config(denied.endpoint, "source-retry"), noSleep);
      const error = await Array.fromAsync(source.list("")).catch((e) => e);
      assert.equal(error.code, "SOURCE_REFUSED");
      assert.match(error.message, /refused the request while listing the bucket \(AccessDenied\)/);
      assert.equal(denied.requests(), 1);
    } finally {
      await denied.stop();
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 source: an unreachable endpoint says so after its retries; an abort stops at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  let sleeps = 0;
  const source = new S3Source(config(`http://127.0.0.1:${port}`, "src"), () => {
    sleeps++;
    return Promise.resolve();
  });
  const error = await source.get("k").catch((e) => e);
  assert.equal(error.code, "SOURCE_UNAVAILABLE");
  assert.match(error.message, /connection refused/);
  assert.equal(sleeps, S3_ATTEMPTS - 1);

  const aborted = new AbortController();
  aborted.abort();
  sleeps = 0;
  const stopped = await source.get("k", aborted.signal).catch((e) => e);
  assert.equal(stopped.name, "AbortError");
  assert.equal(sleeps, 0);
});

Deno.test("s3 source: a missing bucket is named as such, a missing object is simply absent, wrong keys are refused", async () => {
  const s3 = await startS3(["source-src"]);
  try {
    const source = new S3Source(config(s3.endpoint, "source-src"));
    await source.checkBucket();
    assert.equal(await source.head("missing"), null);
    const missing = await source.get("missing").catch((e) => e);
    assert.equal(classifyS3(missing.cause).kind, "not-found");
    const noBucket = await source.checkBucket("no-such-bucket").catch((e) => e);
    assert.equal(noBucket.code, "SOURCE_REFUSED");
    assert.match(noBucket.message, /The bucket of s3:\/\/no-such-bucket at .* does not exist/);
    const listMissing = await Array.fromAsync(
      new S3Source(config(s3.endpoint, "no-such-bucket")).list(""),
    )
      .catch((e) => e);
    assert.equal(listMissing.code, "SOURCE_REFUSED");
    assert.throws(
      () => new S3Source(config(`${s3.endpoint}/sub`, "source-src")),
      /has a path; give the server's root URL/,
    );
  } finally {
    await s3.stop();
  }
});

import assert from "node:assert/strict";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { S3Http, S3HttpError } from "../../src/engines/s3mirror/s3_http.ts";
import { S3Source } from "../../src/engines/s3mirror/source.ts";
import { classifyS3 } from "../../src/repository/s3_errors.ts";
import { startS3 } from "../helpers/s3.ts";

const noSleep = () => Promise.resolve();

function endpoint(url: string, pathStyle = true) {
  return {
    endpoint: url,
    region: "us-east-1",
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    forcePathStyle: pathStyle,
  };
}

/**
 * A proxy in front of the real S3 server: `intercept` may answer a request itself;
 * otherwise it is forwarded unchanged (the signature covers the Host header).
 */
function proxy(target: string, intercept: (req: Request) => Promise<Response | null>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const answer = await intercept(req);
    if (answer) return answer;
    const url = new URL(req.url);
    return await fetch(target + url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      body: req.body,
    });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, stop: () => server.shutdown() };
}

/**
 * Checks each request's SigV4 signature as it arrived on the wire (s3rver itself
 * does not check V4 signatures), with the AWS SDK's signer on the received method,
 * Host, path and query; a mismatch is refused as S3 would.
 */
function signatureCheckingProxy(target: string, secretAccessKey: string) {
  let checked = 0;
  const server = proxy(target, async (req) => {
    const url = new URL(req.url);
    const m =
      /Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/
        .exec(req.headers.get("authorization") ?? "");
    if (!m) return new Response("unsigned", { status: 400 });
    const headers: Record<string, string> = {};
    for (const name of m[4].split(";")) headers[name] = req.headers.get(name) ?? "";
    const signer = new SignatureV4({
      credentials: { accessKeyId: m[1], secretAccessKey },
      region: m[3],
      service: "s3",
      sha256: Sha256,
      uriEscapePath: false,
      applyChecksum: false,
    });
    const date = (req.headers.get("x-amz-date") ?? "")
      .replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z");
    const expected = await signer.sign({
      method: req.method,
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      // The path as it arrived: S3 signs what was sent, dot segments and all.
      path: req.url.replace(/^https?:\/\/[^/]+/, "").replace(/\?.*$/, ""),
      query: Object.fromEntries(url.searchParams),
      headers,
    }, { signingDate: new Date(date) });
    if (!String(expected.headers.authorization).endsWith(`Signature=${m[5]}`)) {
      return new Response("<Error><Code>SignatureDoesNotMatch</Code></Error>", { status: 403 });
    }
    checked++;
    return null;
  });
  return { ...server, checked: () => checked };
}

/** Answers the first `failures` requests itself with `status` and S3's error body. */
function faultyProxy(target: string, failures: number, status: number, code: string) {
  let seen = 0;
  const server = proxy(target, async (req) => {
    if (++seen > failures) return null;
    await req.body?.cancel();
    return new Response(`<Error><Code>${code}</Code><Message>try later</Message></Error>`, {
      status,
    });
  });
  return { ...server, requests: () => seen };
}

Deno.test("s3 http: request URLs, path-style and virtual-hosted, with keys encoded once", () => {
  const path = new S3Http(endpoint("http://127.0.0.1:9000"));
  assert.equal(
    path.url("src", "a b/ü+%.txt", "prefix=x").href,
    "http://127.0.0.1:9000/src/a%20b/%C3%BC%2B%25.txt?prefix=x",
  );
  assert.equal(path.url("src", "", "").href, "http://127.0.0.1:9000/src");
  const virtual = new S3Http(endpoint("https://s3.eu-west-3.amazonaws.com", false));
  assert.equal(virtual.url("src", "k", "").href, "https://src.s3.eu-west-3.amazonaws.com/k");
  assert.equal(virtual.url("src", "", "").href, "https://src.s3.eu-west-3.amazonaws.com/");
  const based = new S3Http(endpoint("http://gw.local/s3/"));
  assert.equal(based.url("src", "k", "").href, "http://gw.local/s3/src/k");
});

Deno.test("s3 http: a key with '.' or '..' segments is requested as written, never resolved to another object", () => {
  const http = new S3Http(endpoint("http://127.0.0.1:9000"));
  for (const key of ["a/../b", "./x", "a/.", ".."]) {
    const { url, path } = http.target("src", key, "");
    assert.equal(path, `/src/${key}`, key);
    assert.notEqual(url.pathname, path, `${key}: the URL resolved it, so it is not what is sent`);
  }
});

Deno.test("s3 http: GET, HEAD and listing against a real S3 server, signed", async () => {
  const s3 = await startS3(["http-src"]);
  try {
    const sdk = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    });
    const key = "dir/odd key+ü%.bin";
    await sdk.send(
      new PutObjectCommand({ Bucket: "http-src", Key: key, Body: new Uint8Array([1, 2, 3]) }),
    );
    const proxy = signatureCheckingProxy(s3.endpoint, "S3RVER");
    try {
      const http = new S3Http(endpoint(proxy.url));
      const got = await http.request("GET", "http-src", key);
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), new Uint8Array([1, 2, 3]));
      await (await http.request("HEAD", "http-src", key)).body?.cancel();
      await (await http.request("GET", "http-src", "", { prefix: "dir/ü+", marker: "a b" })).text();
      assert.equal(proxy.checked(), 3, "every request's signature checked out");
      // A key with dot segments goes out as written (node:http), signed as sent.
      const dotted = await http.request("HEAD", "http-src", "dir/../dir/odd key+ü%.bin");
      assert.equal(dotted.status, 200);
      assert.equal(proxy.checked(), 4, "the dot-segment request's signature checked out");
      const forged = await new S3Http({ ...endpoint(proxy.url), secretAccessKey: "wrong" })
        .request("GET", "http-src", key).catch((e) => e);
      assert.equal(forged.name, "SignatureDoesNotMatch");
      assert.equal(classifyS3(forged).kind, "auth");
    } finally {
      await proxy.stop();
    }

    const http = new S3Http(endpoint(s3.endpoint));
    const got = await http.request("GET", "http-src", key);
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), new Uint8Array([1, 2, 3]));
    const head = await http.request("HEAD", "http-src", key);
    assert.equal(head.headers.get("content-length"), "3");
    const list = await (await http.request("GET", "http-src", "", { prefix: "dir/" })).text();
    assert.match(list, /<Key>dir\/odd key\+ü%\.bin<\/Key>/);

    const missing = await http.request("GET", "http-src", "nope").catch((e) => e);
    assert.ok(missing instanceof S3HttpError);
    assert.equal(missing.name, "NoSuchKey");
    assert.equal(classifyS3(missing).kind, "not-found");
    const headMissing = await http.request("HEAD", "http-src", "nope").catch((e) => e);
    assert.equal(classifyS3(headMissing).kind, "not-found", "a HEAD 404 has no body to read");
    const noBucket = await http.request("GET", "no-such-bucket", "", {}).catch((e) => e);
    assert.equal(classifyS3(noBucket).kind, "no-bucket");
    const wrongKey = await new S3Http({ ...endpoint(s3.endpoint), accessKeyId: "WRONG" })
      .request("GET", "http-src", key).catch((e) => e);
    assert.equal(classifyS3(wrongKey).kind, "auth");
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 http: SlowDown and 503 are retried until the server answers; a 403 is not retried", async () => {
  const s3 = await startS3(["retry-src"]);
  try {
    for (const [status, code] of [[503, "SlowDown"], [500, "InternalError"]] as const) {
      const proxy = faultyProxy(s3.endpoint, 3, status, code);
      try {
        const http = new S3Http(endpoint(proxy.url), noSleep);
        const page = await http.request("GET", "retry-src", "", { prefix: "" });
        assert.equal(page.status, 200);
        await page.body?.cancel();
        assert.equal(proxy.requests(), 4);
      } finally {
        await proxy.stop();
      }
    }
    const always = faultyProxy(s3.endpoint, 100, 503, "SlowDown");
    try {
      const error = await new S3Http(endpoint(always.url), noSleep)
        .request("GET", "retry-src", "").catch((e) => e);
      assert.equal(error.name, "SlowDown");
      assert.equal(always.requests(), 5, "five attempts, then the error");
    } finally {
      await always.stop();
    }
    const denied = faultyProxy(s3.endpoint, 100, 403, "AccessDenied");
    try {
      const error = await new S3Http(endpoint(denied.url), noSleep)
        .request("GET", "retry-src", "").catch((e) => e);
      assert.equal(classifyS3(error).kind, "auth");
      assert.equal(denied.requests(), 1);
    } finally {
      await denied.stop();
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 http: an unreachable endpoint says so after its retries; an abort stops at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  let sleeps = 0;
  const http = new S3Http(endpoint(`http://127.0.0.1:${port}`), () => {
    sleeps++;
    return Promise.resolve();
  });
  const error = await http.request("GET", "src", "k").catch((e) => e);
  assert.equal(error.name, "NetworkError");
  assert.match(error.message, /127\.0\.0\.1:\d+: connection refused/);
  assert.equal(sleeps, 4);

  const aborted = new AbortController();
  aborted.abort();
  const stopped = await http.request("GET", "src", "k", {}, aborted.signal).catch((e) => e);
  assert.equal(stopped.name, "AbortError");
});

Deno.test("s3 source: a missing bucket is named as such, a missing object is simply absent", async () => {
  const s3 = await startS3(["source-src"]);
  try {
    const source = new S3Source({
      kind: "s3",
      endpoint: s3.endpoint,
      region: "us-east-1",
      bucket: "source-src",
      prefixes: [],
      access_key_id: s3.accessKeyId,
      secret_access_key: s3.secretAccessKey,
      remove: false,
      concurrency: 8,
      force_path_style: true,
      max_delete_percent: 50,
    });
    await source.checkBucket();
    await assert.rejects(
      source.checkBucket("no-such-bucket"),
      /The bucket of s3:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+ does not exist/,
    );
    assert.equal(await source.head("missing/key"), null);
  } finally {
    await s3.stop();
  }
});

/**
 * A real S3-compatible server for tests (s3rver), in its own process so its work
 * does not share the test's event loop. Prints {"port":N} once listening.
 *   deno run -A tests/helpers/s3_server.ts DIR BUCKET[,BUCKET...] [direct]
 *
 * s3rver ignores `encoding-type=url` on listings (it returns keys as XML text),
 * while S3 and MinIO then URL-encode every key, and clients that ask for it (the
 * `minio` package always does) decode them: `a+b` would read back as `a b`, and
 * `100%` would not decode at all. So s3rver listens on a port of its own and this
 * front answers as S3 does: a listing asked for with `encoding-type=url` has its
 * `<Key>` and `<Prefix>` values URL-encoded (reencodeListing). Everything else passes
 * through byte for byte, paths as sent (node:http: no dot-segment resolution).
 *
 * s3rver also ignores `If-None-Match: *` on PutObject and CompleteMultipartUpload
 * (it reads the header on GET only) and would replace the object, where S3 answers
 * 412 PreconditionFailed and leaves it (AWS S3 User Guide, "Conditional writes").
 * The front answers as S3 does: writes to one key pass one at a time, and a
 * conditional one whose key exists (a HEAD upstream) gets S3's 412 error.
 * `direct` serves s3rver itself (benchmarks, whose keys need no encoding: no hop).
 */
import http from "node:http";
// Test-only: imported by version here, not in deno.json, so the daemon never installs it.
// deno-lint-ignore no-import-prefix -- test/build-only: kept out of deno.json and deno.lock
import S3rver from "npm:s3rver@3.7.1";
import { reencodeListing } from "./s3_listing.ts";
import { abortUpload, listUploadsXml } from "./s3_uploads.ts";

const [dir, buckets, mode] = Deno.args;
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: dir,
  configureBuckets: (buckets ?? "").split(",").filter(Boolean).map((name) => ({
    name,
    configs: [],
  })),
});
const { port: upstreamPort } = await server.run();

/** Writes to one key, one at a time: a conditional write's look and write are one step. */
const writing = new Map<string, Promise<void>>();

function isObjectWrite(req: http.IncomingMessage, url: URL): boolean {
  const part = url.searchParams.has("partNumber") || url.searchParams.has("uploads");
  if (req.method === "PUT") return !part;
  if (req.method === "POST") return url.searchParams.has("uploadId");
  return req.method === "DELETE" && !url.searchParams.has("uploadId");
}

function keyExists(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const head = http.request(
      { host: "127.0.0.1", port: upstreamPort, method: "HEAD", path },
      (answer) => {
        answer.resume();
        resolve(answer.statusCode === 200);
      },
    );
    head.on("error", reject);
    head.end();
  });
}

const PRECONDITION_FAILED = '<?xml version="1.0" encoding="UTF-8"?>\n' +
  "<Error><Code>PreconditionFailed</Code>" +
  "<Message>At least one of the pre-conditions you specified did not hold</Message>" +
  "<Condition>If-None-Match</Condition><RequestId>cairn-test-front</RequestId></Error>";

const front = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (answerUploads(req, res, url)) return;
  if (isObjectWrite(req, url)) {
    const path = url.pathname;
    const before = writing.get(path) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => done = resolve);
    const tail = before.then(() => mine);
    writing.set(path, tail);
    res.on("close", () => {
      done();
      if (writing.get(path) === tail) writing.delete(path);
    });
    await before;
    if (req.headers["if-none-match"] === "*" && await keyExists(path).catch(() => false)) {
      req.resume();
      res.writeHead(412, {
        "content-type": "application/xml",
        "content-length": String(Buffer.byteLength(PRECONDITION_FAILED)),
      });
      res.end(PRECONDITION_FAILED);
      return;
    }
  }
  const encode = req.method === "GET" && url.searchParams.get("encoding-type") === "url";
  const upstream = http.request({
    host: "127.0.0.1",
    port: upstreamPort,
    method: req.method,
    path: req.url,
    headers: req.headers,
  }, (answer) => {
    if (!encode || answer.statusCode !== 200) {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    answer.on("data", (c: Buffer) => chunks.push(c));
    answer.on("end", () => {
      const body = Buffer.from(reencodeListing(Buffer.concat(chunks).toString("utf8")), "utf8");
      const headers = { ...answer.headers, "content-length": String(body.byteLength) };
      delete headers["transfer-encoding"];
      res.writeHead(200, headers);
      res.end(body);
    });
  });
  upstream.on("error", (error) => {
    res.writeHead(502);
    res.end(String(error));
  });
  // A client that goes away mid-request (an aborted upload) takes its upstream
  // request with it: a half-sent body would hold s3rver's close() forever.
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
});
/**
 * s3rver 3.7.1 answers ListMultipartUploads (GET /bucket?uploads) and
 * AbortMultipartUpload (DELETE /bucket/key?uploadId=) with NotImplemented /
 * MethodNotAllowed, though it keeps every unfinished upload on disk. The front
 * answers both from s3rver's own store (s3_uploads.ts), so a test sees what S3
 * and MinIO would say about uploads that s3rver really holds.
 */
function answerUploads(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
): boolean {
  const parts = url.pathname.split("/").filter(Boolean);
  if (req.method === "GET" && parts.length === 1 && url.searchParams.has("uploads")) {
    const xml = listUploadsXml(
      dir,
      decodeURIComponent(parts[0]),
      url.searchParams.get("prefix") ?? "",
    );
    res.writeHead(200, { "content-type": "application/xml" });
    res.end(xml);
    return true;
  }
  if (req.method === "DELETE" && parts.length >= 2 && url.searchParams.has("uploadId")) {
    const key = parts.slice(1).map(decodeURIComponent).join("/");
    const found = abortUpload(
      dir,
      decodeURIComponent(parts[0]),
      key,
      url.searchParams.get("uploadId")!,
    );
    if (found) {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { "content-type": "application/xml" });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist</Message></Error>',
      );
    }
    req.resume();
    return true;
  }
  return false;
}

if (mode === "direct") {
  console.log(JSON.stringify({ port: upstreamPort }));
} else {
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  console.log(JSON.stringify({ port: (front.address() as { port: number }).port }));
}
Deno.addSignalListener("SIGTERM", async () => {
  front.close();
  front.closeAllConnections();
  // A connection still open must not keep the test waiting for this process.
  setTimeout(() => Deno.exit(0), 2000);
  await server.close();
  Deno.exit(0);
});

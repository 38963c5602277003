import assert from "node:assert/strict";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";
import {
  amzDate,
  canonicalQuery,
  EMPTY_SHA256,
  Signer,
  uriEncode,
} from "../../src/engines/s3mirror/sigv4.ts";

// The example credentials and requests of AWS's S3 SigV4 documentation
// ("Signature Calculations for the Authorization Header: Transferring Payload in a
// Single Chunk"), with the signatures the documentation prints.
const EXAMPLE = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  region: "us-east-1",
};
const EXAMPLE_DATE = new Date("2013-05-24T00:00:00Z");

function signatureOf(authorization: string): string {
  return /Signature=([0-9a-f]{64})$/.exec(authorization)![1];
}

Deno.test("sigv4: AWS's documented GET Object example (a ranged read) signs to the documented signature", () => {
  const headers = new Signer(EXAMPLE).sign({
    method: "GET",
    host: "examplebucket.s3.amazonaws.com",
    path: "/test.txt",
    query: "",
    headers: { range: "bytes=0-9" },
    now: EXAMPLE_DATE,
  });
  assert.equal(
    signatureOf(headers.authorization),
    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
  assert.equal(
    headers.authorization.split(", ").slice(0, 2).join(", "),
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date",
  );
  assert.equal(headers["x-amz-date"], "20130524T000000Z");
  assert.equal(headers["x-amz-content-sha256"], EMPTY_SHA256);
  assert.equal(headers.host, undefined, "fetch sets Host itself");
});

Deno.test("sigv4: AWS's documented GET Bucket (list objects) example signs to the documented signature", () => {
  const headers = new Signer(EXAMPLE).sign({
    method: "GET",
    host: "examplebucket.s3.amazonaws.com",
    path: "/",
    query: canonicalQuery({ "max-keys": "2", prefix: "J" }),
    now: EXAMPLE_DATE,
  });
  assert.equal(
    signatureOf(headers.authorization),
    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
  );
});

Deno.test("sigv4: keys and query values are encoded the way S3 canonicalises them", () => {
  assert.equal(uriEncode("a b+c%d/ü~_.-!*'()", true), "a%20b%2Bc%25d/%C3%BC~_.-%21%2A%27%28%29");
  assert.equal(uriEncode("dir/x", false), "dir%2Fx");
  assert.equal(
    canonicalQuery({ prefix: "a/b c", marker: undefined, "max-keys": "5" }),
    "max-keys=5&prefix=a%2Fb%20c",
  );
  assert.equal(amzDate(new Date("2026-11-21T09:08:07.123Z")), "20261121T090807Z");
});

Deno.test("sigv4: matches the AWS SDK's own signer on awkward keys, queries, ports and dates", async () => {
  const keys = [
    "plain.txt",
    "with space/and+plus",
    "pct%25/ü/日本",
    "tilde~_.-",
    "(paren)!*'",
    "a/b/c/",
  ];
  const queries: Array<Record<string, string>> = [
    {},
    { prefix: "data/ x+y", marker: "data/9 ü" },
    { "list-type": "2", "continuation-token": "a/b=c&d" },
  ];
  const dates = [new Date("2026-01-01T00:00:00Z"), new Date("2026-11-21T23:59:59Z")];
  for (const [i, key] of keys.entries()) {
    const query = queries[i % queries.length];
    const now = dates[i % dates.length];
    const host = i % 2 ? "127.0.0.1:9000" : "bucket.s3.eu-west-3.amazonaws.com";
    const region = i % 2 ? "us-east-1" : "eu-west-3";
    const credentials = { accessKeyId: "AKID" + i, secretAccessKey: "secret/+" + i };
    const path = "/bucket/" + uriEncode(key, true);
    const ours = new Signer({ ...credentials, region }).sign({
      method: i % 3 ? "GET" : "HEAD",
      host,
      path,
      query: canonicalQuery(query),
      now,
    });
    const sdk = new SignatureV4({
      credentials,
      region,
      service: "s3",
      sha256: Sha256,
      uriEscapePath: false,
      applyChecksum: false,
    });
    const signed = await sdk.sign({
      method: i % 3 ? "GET" : "HEAD",
      protocol: "http:",
      hostname: host.split(":")[0],
      port: host.includes(":") ? Number(host.split(":")[1]) : undefined,
      // The SDK takes the raw query and the already-escaped path.
      path,
      query,
      headers: { host, "x-amz-content-sha256": EMPTY_SHA256 },
    }, { signingDate: now });
    assert.equal(ours.authorization, signed.headers.authorization, `key ${key}`);
  }
});

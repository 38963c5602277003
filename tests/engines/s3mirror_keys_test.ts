import assert from "node:assert/strict";
import { parseS3Target } from "../../src/engines/s3mirror/keys.ts";

Deno.test("restore targets: s3://BUCKET/PREFIX", () => {
  assert.deepEqual(parseS3Target("s3://restore-bucket/some/prefix/"), {
    bucket: "restore-bucket",
    prefix: "some/prefix/",
  });
  assert.deepEqual(parseS3Target("s3://abc"), { bucket: "abc", prefix: "" });
  for (const bad of ["s3://ab/x", "http://bucket/x", "s3://Bad_Bucket/x", "s3://bucket/../x"]) {
    assert.equal(parseS3Target(bad), null, bad);
  }
});

import assert from "node:assert/strict";
import {
  parseErrorBody,
  parseListPage,
  unescapeXml,
  XmlShapeError,
} from "../../src/engines/s3mirror/s3_xml.ts";

const PAGE = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>src</Name><Prefix>data/</Prefix><Marker/><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
  <Contents><Key>data/a &amp; b &lt;1&gt; &quot;q&quot; &apos;s&apos; &#233;&#x1F600;.txt</Key>
    <LastModified>2026-11-21T09:00:00.000Z</LastModified><ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag>
    <Size>43</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>data/big</Key><LastModified>2026-11-20T08:00:00Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e-3"</ETag><Size>5368709120</Size></Contents>
</ListBucketResult>`;

Deno.test("s3 xml: a listing page gives every object with its key unescaped, size, bare etag and date", () => {
  const page = parseListPage(PAGE);
  assert.deepEqual(page.objects, [
    {
      key: "data/a & b <1> \"q\" 's' é😀.txt",
      size: 43,
      etag: "9e107d9d372bb6826bd81d3542a419d6",
      lastModified: "2026-11-21T09:00:00.000Z",
    },
    {
      key: "data/big",
      size: 5368709120,
      etag: "d41d8cd98f00b204e9800998ecf8427e-3",
      lastModified: "2026-11-20T08:00:00.000Z",
    },
  ]);
  assert.equal(page.isTruncated, true);
  assert.equal(page.nextMarker, null, "no delimiter, no NextMarker: the caller uses the last key");
});

Deno.test("s3 xml: an empty last page, and NextMarker when a server sends one", () => {
  const empty = parseListPage(
    `<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>`,
  );
  assert.deepEqual(empty, { objects: [], isTruncated: false, nextMarker: null });
  const next = parseListPage(
    `<ListBucketResult><IsTruncated>true</IsTruncated><NextMarker>k&amp;9</NextMarker><Contents><Key>k&amp;1</Key><Size>0</Size></Contents></ListBucketResult>`,
  );
  assert.equal(next.nextMarker, "k&9");
  assert.deepEqual(next.objects, [{ key: "k&1", size: 0, etag: "", lastModified: null }]);
});

Deno.test("s3 xml: what is not a listing is refused with a message, not read as an empty page", () => {
  assert.throws(() => parseListPage("<html>proxy error</html>"), XmlShapeError);
  assert.throws(
    () => parseListPage("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"),
    /without <Key>/,
  );
  assert.throws(
    () =>
      parseListPage(
        "<ListBucketResult><Contents><Key>a</Key><Size>-4</Size></Contents></ListBucketResult>",
      ),
    /size "-4" of a/,
  );
  assert.throws(() => parseListPage("<ListBucketResult><Contents><Key>a</Key>"), /unterminated/);
});

Deno.test("s3 xml: error bodies give their code and message", () => {
  assert.deepEqual(
    parseErrorBody(
      `<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>The bucket &apos;x&apos; does not exist</Message><Resource>/x</Resource></Error>`,
    ),
    { code: "NoSuchBucket", message: "The bucket 'x' does not exist" },
  );
  assert.deepEqual(parseErrorBody(""), { code: null, message: null });
  assert.deepEqual(parseErrorBody("<html>bad gateway</html>"), { code: null, message: null });
});

Deno.test("s3 xml: unknown entities and out-of-range references are left as written", () => {
  assert.equal(unescapeXml("a &bogus; &#x110000; &amp;amp;"), "a &bogus; &#x110000; &amp;");
});

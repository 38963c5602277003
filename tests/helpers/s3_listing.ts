/**
 * A ListObjects answer as S3 gives it for `encoding-type=url`: every `<Key>` and
 * `<Prefix>` value (and `<Marker>`, `<NextMarker>`) URL-encoded, the rest unchanged,
 * plus `<EncodingType>url</EncodingType>`. S3's encoding is application/x-www-form-
 * urlencoded's: a space is `+`, `/` stays as it is (AWS S3 API reference,
 * ListObjects, "EncodingType"); clients decode with `+` as space, then
 * percent-decoding. Pure: no I/O.
 */
export function reencodeListing(xml: string): string {
  const out = xml.replace(
    /<(Key|Prefix|Marker|NextMarker)>([^<]*)<\/\1>/g,
    (_, tag: string, text: string) => `<${tag}>${encodeKey(unescapeXml(text))}</${tag}>`,
  );
  return out.includes("<EncodingType>") ? out : out.replace(
    /<ListBucketResult([^>]*)>/,
    "<ListBucketResult$1><EncodingType>url</EncodingType>",
  );
}

function encodeKey(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, "/").replace(/%20/g, "+")
    // encodeURIComponent leaves these as they are; S3 encodes them.
    .replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (whole, ref: string) => {
    if (ref === "amp") return "&";
    if (ref === "lt") return "<";
    if (ref === "gt") return ">";
    if (ref === "quot") return '"';
    if (ref === "apos") return "'";
    const code = ref.startsWith("#x") ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

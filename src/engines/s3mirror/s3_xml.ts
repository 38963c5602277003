/**
 * The two S3 XML documents the mirror's source side reads: a ListObjects page and
 * an error. Pure. S3's XML is flat and attribute-free below the root, so each
 * element is found by its tags; text is unescaped (the five named entities and
 * numeric references), which is all S3 emits.
 */

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  lastModified: string | null;
}

export interface ListPage {
  objects: ListedObject[];
  isTruncated: boolean;
  /** Only sent when a delimiter was given; otherwise the next marker is the last key. */
  nextMarker: string | null;
}

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export function unescapeXml(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref[0] !== "#") return NAMED[ref] ?? whole;
    const code = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** The text of the first <tag>...</tag> inside xml[from, to), or null. */
function element(xml: string, tag: string, from = 0, to = xml.length): string | null {
  const open = xml.indexOf(`<${tag}>`, from);
  if (open < 0 || open >= to) {
    // An empty element (<Prefix/>) is present but has no text.
    const empty = xml.indexOf(`<${tag}/>`, from);
    return empty >= 0 && empty < to ? "" : null;
  }
  const start = open + tag.length + 2;
  const close = xml.indexOf(`</${tag}>`, start);
  if (close < 0 || close > to) return null;
  return unescapeXml(xml.slice(start, close));
}

export class XmlShapeError extends Error {
  constructor(what: string) {
    super(`The S3 server sent a listing this client cannot read: ${what}`);
    this.name = "XmlShapeError";
  }
}

export function parseListPage(xml: string): ListPage {
  if (!xml.includes("<ListBucketResult")) throw new XmlShapeError("no <ListBucketResult>");
  const objects: ListedObject[] = [];
  for (let at = xml.indexOf("<Contents>"); at >= 0; at = xml.indexOf("<Contents>", at)) {
    const end = xml.indexOf("</Contents>", at);
    if (end < 0) throw new XmlShapeError("an unterminated <Contents>");
    const key = element(xml, "Key", at, end);
    if (key === null) throw new XmlShapeError("a <Contents> without <Key>");
    const size = Number(element(xml, "Size", at, end) ?? "0");
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new XmlShapeError(`size ${JSON.stringify(element(xml, "Size", at, end))} of ${key}`);
    }
    const modified = element(xml, "LastModified", at, end);
    const parsed = modified ? new Date(modified) : null;
    objects.push({
      key,
      size,
      etag: (element(xml, "ETag", at, end) ?? "").replace(/^"|"$/g, ""),
      lastModified: parsed && !Number.isNaN(parsed.getTime()) ? parsed.toISOString() : null,
    });
    at = end;
  }
  // Contents come before these in every server's output, but the order is not promised.
  return {
    objects,
    isTruncated: element(xml, "IsTruncated") === "true",
    nextMarker: element(xml, "NextMarker") || null,
  };
}

/** <Error><Code>..</Code><Message>..</Message></Error>, or nulls when the body is not one. */
export function parseErrorBody(xml: string): { code: string | null; message: string | null } {
  if (!xml.includes("<Error")) return { code: null, message: null };
  return { code: element(xml, "Code"), message: element(xml, "Message") };
}

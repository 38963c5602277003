/** ustar header layout with PAX extensions, shared by the writer and the reader. */

export const BLOCK = 512;
export const TYPE = {
  file: "0",
  link: "1",
  symlink: "2",
  dir: "5",
  pax: "x",
  paxGlobal: "g",
  gnuLongName: "L",
  gnuLongLink: "K",
} as const;

export interface TarHeader {
  path: string;
  type: "file" | "dir" | "symlink" | "link" | "other";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number; // seconds
  linkpath: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_OCTAL_11 = 0o77777777777;

function writeString(buf: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  buf.set(bytes.subarray(0, length), offset);
}

function writeOctal(buf: Uint8Array, offset: number, length: number, value: number): void {
  const digits = Math.max(0, Math.floor(value)).toString(8).padStart(length - 1, "0");
  writeString(buf, offset, length - 1, digits.slice(-(length - 1)));
  buf[offset + length - 1] = 0;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = encoder.encode(body).length;
  len += String(len).length;
  if (String(len).length !== String(len - String(len).length).length) len++;
  return `${len}${body}`;
}

/** A ustar header block, preceded by a PAX header when a field does not fit ustar. */
export function encodeHeader(h: TarHeader): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  const pathBytes = encoder.encode(h.path).length;
  const linkBytes = encoder.encode(h.linkpath).length;
  const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);
  const pax: string[] = [];
  if (pathBytes > 100 || !ascii(h.path)) pax.push(paxRecord("path", h.path));
  if (linkBytes > 100 || !ascii(h.linkpath)) pax.push(paxRecord("linkpath", h.linkpath));
  if (h.size > MAX_OCTAL_11) pax.push(paxRecord("size", String(h.size)));
  if (pax.length > 0) {
    const data = encoder.encode(pax.join(""));
    blocks.push(
      rawHeader({
        ...h,
        path: "PaxHeader/" + asciiName(h.path),
        type: "other",
        size: data.length,
        linkpath: "",
      }, TYPE.pax),
    );
    blocks.push(padded(data));
  }
  const typeflag = h.type === "file"
    ? TYPE.file
    : h.type === "dir"
    ? TYPE.dir
    : h.type === "symlink"
    ? TYPE.symlink
    : TYPE.link;
  blocks.push(
    rawHeader({ ...h, path: asciiName(h.path), linkpath: asciiName(h.linkpath) }, typeflag),
  );
  return blocks;
}

function asciiName(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, "_");
  return encoder.encode(clean).length > 100 ? clean.slice(0, 100) : clean;
}

function rawHeader(h: TarHeader, typeflag: string): Uint8Array {
  const buf = new Uint8Array(BLOCK);
  writeString(buf, 0, 100, h.path);
  writeOctal(buf, 100, 8, h.mode & 0o7777);
  writeOctal(buf, 108, 8, h.uid <= 0o7777777 ? h.uid : 0);
  writeOctal(buf, 116, 8, h.gid <= 0o7777777 ? h.gid : 0);
  writeOctal(buf, 124, 12, h.size > MAX_OCTAL_11 ? 0 : h.size);
  writeOctal(buf, 136, 12, h.mtime);
  buf.fill(0x20, 148, 156);
  writeString(buf, 156, 1, typeflag);
  writeString(buf, 157, 100, h.linkpath);
  writeString(buf, 257, 6, "ustar");
  buf[262] = 0;
  writeString(buf, 263, 2, "00");
  let sum = 0;
  for (const b of buf) sum += b;
  writeString(buf, 148, 7, sum.toString(8).padStart(6, "0") + "\0");
  buf[155] = 0x20;
  return buf;
}

export function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
  out.set(data);
  return out;
}

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function readString(buf: Uint8Array, offset: number, length: number): string {
  const slice = buf.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return decoder.decode(end === -1 ? slice : slice.subarray(0, end));
}

function readNumber(buf: Uint8Array, offset: number, length: number): number {
  if (buf[offset] & 0x80) {
    // GNU base-256 for values that do not fit in octal.
    let value = 0;
    for (let i = offset + 1; i < offset + length; i++) value = value * 256 + buf[i];
    return value;
  }
  const text = readString(buf, offset, length).trim();
  return text === "" ? 0 : parseInt(text, 8);
}

export function isZeroBlock(buf: Uint8Array): boolean {
  for (const b of buf) if (b !== 0) return false;
  return true;
}

/** Parses one header block; throws on a bad checksum (a damaged archive). */
export function decodeHeader(buf: Uint8Array): { header: TarHeader; typeflag: string } {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : buf[i];
  const stored = readNumber(buf, 148, 8);
  if (stored !== sum) throw new Error("tar header checksum mismatch: the archive is damaged");
  const typeflag = String.fromCharCode(buf[156] || 0x30);
  const prefix = readString(buf, 345, 155);
  const name = readString(buf, 0, 100);
  const magic = readString(buf, 257, 6);
  const path = magic.startsWith("ustar") && prefix ? `${prefix}/${name}` : name;
  const type = typeflag === TYPE.file || typeflag === "7"
    ? "file"
    : typeflag === TYPE.dir
    ? "dir"
    : typeflag === TYPE.symlink
    ? "symlink"
    : typeflag === TYPE.link
    ? "link"
    : "other";
  return {
    typeflag,
    header: {
      path,
      type,
      mode: readNumber(buf, 100, 8),
      uid: readNumber(buf, 108, 8),
      gid: readNumber(buf, 116, 8),
      size: readNumber(buf, 124, 12),
      mtime: readNumber(buf, 136, 12),
      linkpath: readString(buf, 157, 100),
    },
  };
}

export function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const len = parseInt(decoder.decode(data.subarray(offset, space)), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = decoder.decode(data.subarray(space + 1, offset + len - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    offset += len;
  }
  return out;
}

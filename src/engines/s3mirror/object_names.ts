import { createHash } from "node:crypto";
import { CairnError } from "../../errors.ts";

/**
 * Where a mirrored S3 object is stored in the repository. Pure: no I/O.
 *
 * S3 keys are flat strings (any UTF-8 up to 1,024 bytes: AWS S3 user guide, "Naming
 * Amazon S3 objects"); a filesystem is a tree. `photos` and `photos/1.jpg` are two
 * objects in S3, but a file and a directory cannot share the name `photos`. So in an
 * fs repository a key becomes a path where directories and files live in disjoint
 * namespaces, whatever keys arrive later:
 *
 * - The key is split at every `/`. Each segment but the last becomes a directory named
 *   after it with `%2F` appended (the `/` it ends with, percent-encoded): `photos/1.jpg`
 *   is `photos%2F/1.jpg`. The last segment is the file's name. No file name ever ends
 *   in `%2F`, since a segment holds no `/`.
 * - Inside a segment, `%`, `\`, NUL and the other control bytes (U+0000-U+001F, U+007F)
 *   are percent-encoded as `%XX` (upper-case hex), and nothing else is: names stay
 *   readable, and a file name never contains `%` followed by anything but two hex digits.
 * - An empty segment is an empty name: a directory `%2F` (`a//b` is `a%2F/%2F/b`); an
 *   empty last segment (a key ending in `/`, the console's "folder") is the file
 *   `%empty`. A last segment `.` or `..` is the file `%2E` or `%2E%2E`.
 * - A segment longer than 240 bytes once encoded (NAME_MAX is 255) is cut, never inside
 *   a character or a `%XX`, into pieces that continue in a directory named after the
 *   piece with `%+` appended: the segment is the pieces joined.
 * - A key whose path would pass FS_PATH_BUDGET bytes (PATH_MAX is 4,096 for the whole
 *   absolute path) is stored as `%long-keys/<sha256 of the key, hex>`; only the listing
 *   names its key.
 *
 * A `%` followed by anything but two upper-case hex digits never comes from a key's
 * text: `%empty`, `%long-keys` and the `%+` suffix are such names, and any other name
 * of that shape in `mirrors/<client>/` (say `%versions`) is free for cairn's own use.
 * Reading a path back: drop the `/` after every `%2F` and every `%+` (with the `%+`),
 * percent-decode, and map `%empty` to "" (fsPathKey).
 *
 * An S3 repository stores the key as it is (`mirrors/<client>/<key>`), except keys
 * that S3-compatible servers treat differently or that leave no room under S3's
 * 1,024 bytes (s3KeepsKeyAsIs, storedObjectKey).
 */

/** Bytes of one encoded piece of a segment; the 3-byte marker keeps a name within 255. */
export const PIECE_BYTES = 240;
/**
 * Bytes the encoded part of a path may take. With `mirrors/<client>/` (at most 72
 * bytes) this leaves 950 bytes for the repository's own path under Linux's PATH_MAX.
 */
export const FS_PATH_BUDGET = 3072;
/**
 * Bytes of a key stored as it is in an S3 repository: S3 allows 1,024 for the whole
 * key, which also holds the repository prefix and `mirrors/<client>/`.
 */
export const S3_RAW_BUDGET = 880;

const DIR = "%2F";
const CONTINUED = "%+";
const EMPTY = "%empty";
export const LONG_KEYS = "%long-keys";

const encoder = new TextEncoder();
const bytesOf = (s: string) => encoder.encode(s).byteLength;

/** Why a string cannot be an S3 key cairn can store, or null. */
export function objectKeyProblem(key: string): string | null {
  if (typeof key !== "string" || key === "") return "the key is empty";
  // A lone surrogate has no UTF-8 form: it would be stored as U+FFFD and collide.
  if (!key.isWellFormed()) return "the key is not valid Unicode (a lone surrogate)";
  return null;
}

// deno-lint-ignore no-control-regex -- control bytes are exactly what is escaped
const ESCAPED = /[%\\\x00-\x1f\x7f]/g;

// deno-lint-ignore no-control-regex -- the same set, to test without replacing
const NEEDS_ESCAPE = /[%\\\x00-\x1f\x7f]/;

function escapeText(segment: string): string {
  if (!NEEDS_ESCAPE.test(segment)) return segment;
  return segment.replace(
    ESCAPED,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"),
  );
}

/** The encoded text cut into pieces of at most PIECE_BYTES, never inside a %XX or a character. */
function pieces(text: string): string[] {
  if (text.length * 3 <= PIECE_BYTES || bytesOf(text) <= PIECE_BYTES) return [text];
  const out: string[] = [];
  let piece = "", size = 0;
  for (const unit of text.match(/%[0-9A-F]{2}|[^%]/gu) ?? []) {
    const n = unit.length === 3 ? 3 : utf8Bytes(unit.codePointAt(0)!);
    if (size + n > PIECE_BYTES) {
      out.push(piece);
      piece = "";
      size = 0;
    }
    piece += unit;
    size += n;
  }
  out.push(piece);
  return out;
}

function utf8Bytes(codePoint: number): number {
  return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The '/'-separated path (relative to `mirrors/<client>/`) that holds `key` in an fs
 * repository. Every component is 1-255 bytes, never `.` or `..`, holds no NUL or `\`;
 * distinct keys give distinct paths, and no key's path is a directory of another's.
 * Throws INVALID_KEY for what objectKeyProblem refuses.
 */
export function fsObjectPath(key: string, budget = FS_PATH_BUDGET): string {
  const problem = objectKeyProblem(key);
  if (problem) throw new CairnError("INVALID_KEY", `Cannot store the object: ${problem}`);
  const segments = key.split("/");
  const parts: string[] = [];
  segments.forEach((segment, i) => {
    const text = escapeText(segment);
    const cut = text.length * 3 <= PIECE_BYTES ? [text] : pieces(text);
    for (const piece of cut.slice(0, -1)) parts.push(piece + CONTINUED);
    const tail = cut[cut.length - 1];
    if (i < segments.length - 1) parts.push(tail + DIR);
    else if (tail === "") parts.push(EMPTY);
    else if (tail === ".") parts.push("%2E");
    else if (tail === "..") parts.push("%2E%2E");
    else parts.push(tail);
  });
  const path = parts.join("/");
  // A UTF-16 unit is at most 3 UTF-8 bytes: most paths need no encoding to measure.
  if (path.length * 3 <= budget || bytesOf(path) <= budget) return path;
  return `${LONG_KEYS}/${sha256Hex(key)}`;
}

function unescapeText(text: string): string | null {
  let bad = false;
  const out = text.replace(/%([0-9A-F]{2})?/g, (_, hex: string | undefined) => {
    if (hex === undefined) bad = true;
    return hex === undefined ? "" : String.fromCharCode(parseInt(hex, 16));
  });
  return bad ? null : out;
}

/**
 * The key an fs path (as fsObjectPath returns it) holds; null for a `%long-keys/`
 * path (its key is only in the listing) and for anything fsObjectPath never returns.
 */
export function fsPathKey(path: string): string | null {
  if (path.startsWith(`${LONG_KEYS}/`)) return null;
  const parts = path.split("/");
  const segments: string[] = [];
  let current = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const last = i === parts.length - 1;
    const marker = part.endsWith(CONTINUED) ? CONTINUED : part.endsWith(DIR) ? DIR : null;
    if (marker && last) return null;
    if (!marker && !last) return null;
    const text = part === EMPTY && last
      ? ""
      : unescapeText(marker ? part.slice(0, -marker.length) : part);
    if (text === null) return null;
    current += text;
    if (marker !== CONTINUED) {
      segments.push(current);
      current = "";
    }
  }
  const key = segments.join("/");
  // Only the canonical spelling is a name of ours (no "%2E%2F", no lower-case hex).
  return objectKeyProblem(key) === null && fsObjectPath(key, Infinity) === path ? key : null;
}

/**
 * True when an S3 repository can hold `key` under its own name. AWS S3 accepts any
 * key, but S3-compatible servers differ on `.` and `..` segments (s3rver resolves
 * `a/../b` to `b`, MinIO refuses it, and fetch() resolves them before sending), and
 * the repository keeps its own keys free of empty segments, a leading `/`, NUL and
 * `\` (paths.ts). The rest, and keys past S3_RAW_BUDGET, are escaped.
 */
export function s3KeepsKeyAsIs(key: string): boolean {
  return objectKeyProblem(key) === null && bytesOf(key) <= S3_RAW_BUDGET &&
    !/[\0\\]/.test(key) && !key.split("/").some((p) => p === "" || p === "." || p === "..");
}

/**
 * The repository key of a mirrored object. fs: `mirrors/<client>/<fsObjectPath>`.
 * S3: `mirrors/<client>/<key>` as it is when s3KeepsKeyAsIs, else
 * `mirrors-escaped/<client>/<fsObjectPath>` (a prefix no client's keys share).
 */
export function storedObjectKey(kind: "fs" | "s3", client: string, key: string): string {
  if (kind === "fs") return `mirrors/${client}/${fsObjectPath(key)}`;
  if (s3KeepsKeyAsIs(key)) return `mirrors/${client}/${key}`;
  return `mirrors-escaped/${client}/${fsObjectPath(key, S3_RAW_BUDGET)}`;
}

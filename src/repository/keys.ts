import { CairnError } from "../errors.ts";

/** Pure key grammar for the repository (SPEC section 3). No I/O here. */

export const CLIENT_NAME = /^[a-z0-9_-]{1,63}$/;
export const LABEL = /^[a-z0-9_-]{1,40}$/;
/** Each engine's plain native format (a tar stream, a pg_dump archive, an RDB...). */
export const BASE_EXTENSIONS = ["dump", "rdb", "sqlite", "tar", "mirror.json"] as const;
export type BaseExtension = typeof BASE_EXTENSIONS[number];
/**
 * The suffixes the artifact pipeline chains after the base (src/pipeline/transforms.ts):
 * at most one compression, then at most one encryption, in the order applied, so the
 * standard tools undo them from the right (`x.tar.zst.age`: age -d, then zstd -d).
 */
export const COMPRESSION_SUFFIXES = ["zst", "gz"] as const;
export const ENCRYPTION_SUFFIXES = ["age"] as const;
/** A full extension: base, optional compression, optional encryption (`rdb.zst.age`). */
export type Extension = string;

const MANIFEST_SUFFIX = ".manifest.json";
const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/;
const KEY = new RegExp(
  "^backups/([a-z0-9_-]{1,63})/(\\d{8}T\\d{9}Z)-([a-z0-9_-]{1,40})\\.((" +
    BASE_EXTENSIONS.map((e) => e.replace(".", "\\.")).join("|") + ")(?:\\.(" +
    COMPRESSION_SUFFIXES.join("|") + "))?(?:\\.(" + ENCRYPTION_SUFFIXES.join("|") + "))?)$",
);

export interface ParsedKey {
  key: string;
  client: string;
  stamp: string;
  label: string;
  /** The whole extension, `tar.zst.age`. */
  ext: Extension;
  /** The engine's plain format, `tar`. */
  base: BaseExtension;
  /** The compression suffix, `zst`, or null. */
  compression: typeof COMPRESSION_SUFFIXES[number] | null;
  encrypted: boolean;
  createdAt: Date;
}

export function formatStamp(date: Date): string {
  const iso = date.toISOString(); // 2026-11-21T02:00:00.000Z
  return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + "T" + iso.slice(11, 13) +
    iso.slice(14, 16) + iso.slice(17, 19) + iso.slice(20, 23) + "Z";
}

export function parseStamp(stamp: string): Date | null {
  const m = STAMP.exec(stamp);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, ms] = m;
  const date = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, +ms));
  return formatStamp(date) === stamp ? date : null;
}

/**
 * `backups/<client>/<stamp>-<label>.<ext>`; `ext` is a full extension (base plus
 * chained suffixes, see chainedExtension in src/pipeline/transforms.ts). INVALID_KEY
 * when the result does not parse.
 */
export function backupKey(client: string, createdAt: Date, label: string, ext: Extension): string {
  if (!CLIENT_NAME.test(client)) {
    throw new CairnError("UNKNOWN_CLIENT", `Invalid client name: ${JSON.stringify(client)}`);
  }
  if (!LABEL.test(label)) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid label: ${JSON.stringify(label)} (use 1-40 of a-z, 0-9, _ and -)`,
    );
  }
  const key = `backups/${client}/${formatStamp(createdAt)}-${label}.${ext}`;
  parseKey(key);
  return key;
}

/** Why a key was refused, in words an operator can act on; null when it is valid. */
export function keyProblem(key: string): string | null {
  if (typeof key !== "string" || key.length === 0) return "the key is empty";
  if (key.includes("\0")) return "the key contains a NUL byte";
  if (key.startsWith("/")) return "the key starts with '/'";
  if (key.includes("\\")) return "the key contains a backslash";
  if (key.split("/").some((part) => part === ".." || part === ".")) {
    return "the key contains a '.' or '..' path segment";
  }
  if (key.endsWith(MANIFEST_SUFFIX)) return "the key names a manifest, not a backup";
  if (!KEY.test(key)) {
    return "the key does not match backups/<client>/<YYYYMMDDTHHMMSSmmmZ>-<label>.<ext>" +
      ` (ext: one of ${
        BASE_EXTENSIONS.join(", ")
      }, then optionally .zst or .gz, then optionally .age)`;
  }
  const stamp = KEY.exec(key)![2];
  if (!parseStamp(stamp)) return "the key's timestamp is not a real date";
  return null;
}

export function parseKey(key: string): ParsedKey {
  const problem = keyProblem(key);
  if (problem) {
    throw new CairnError("INVALID_KEY", `Invalid backup key: ${problem}`, {
      details: { key: printable(key) },
    });
  }
  const [, client, stamp, label, ext, base, compression, encryption] = KEY.exec(key)!;
  return {
    key,
    client,
    stamp,
    label,
    ext,
    base: base as BaseExtension,
    compression: (compression ?? null) as ParsedKey["compression"],
    encrypted: encryption !== undefined,
    createdAt: parseStamp(stamp)!,
  };
}

/** Whether `key` is an s3 mirror run's listing (any chained extension of `mirror.json`). */
export function isMirrorListingKey(key: string): boolean {
  return keyProblem(key) === null && parseKey(key).base === "mirror.json";
}

/**
 * Where an s3 mirror run's reference list lives: the sha256s its listing names, kept
 * readable beside an encrypted listing so that garbage collection of mirror versions
 * needs no identity (engines/s3mirror/versions.ts).
 * `backups/<client>/<stamp>-<label>.mirror.json[.zst][.age]` gives
 * `state/mirror-refs/<client>/<stamp>-<label>.json`. INVALID_KEY for any other key.
 */
export function mirrorRefsKey(key: string): string {
  const parsed = parseKey(key);
  if (parsed.base !== "mirror.json") {
    throw new CairnError("INVALID_KEY", `Not a mirror listing: ${printable(key)}`);
  }
  return `state/mirror-refs/${parsed.client}/${parsed.stamp}-${parsed.label}.json`;
}

export function manifestKey(key: string): string {
  return key + MANIFEST_SUFFIX;
}

export function isManifestKey(key: string): boolean {
  return key.endsWith(MANIFEST_SUFFIX);
}

export function artifactKeyOf(manifest: string): string {
  return manifest.slice(0, -MANIFEST_SUFFIX.length);
}

/** Keys echoed back in errors must not carry control bytes into terminals or logs. */
function printable(key: unknown): string {
  return String(key).replace(
    // deno-lint-ignore no-control-regex -- control bytes are exactly what must be escaped
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

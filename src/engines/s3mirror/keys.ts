import { createHash } from "node:crypto";

/**
 * Where a source object is stored: mirrors/<client>/<source key>, segment by
 * segment. Pure. Segments that a filesystem cannot hold are rewritten (empty ones,
 * names over 200 bytes); the listing keeps the original key next to the stored one.
 * A key that tries to leave the client's folder ('.' or '..' segments, a leading
 * '/', NUL or backslash) gets null: it is refused, never stored.
 */
export function mirrorKey(client: string, sourceKey: string): string | null {
  if (
    sourceKey === "" || sourceKey.includes("\0") || sourceKey.includes("\\") ||
    sourceKey.startsWith("/")
  ) return null;
  const parts = sourceKey.split("/");
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p === "." || p === "..") return null;
    if (p === "") {
      // "a//b" or a folder marker "dir/": keep the object, with a visible placeholder.
      out.push(i === parts.length - 1 ? "~folder-marker" : "~empty");
      continue;
    }
    const bytes = new TextEncoder().encode(p);
    if (bytes.length > 200 || p.startsWith("~")) {
      const digest = createHash("sha256").update(p).digest("hex").slice(0, 16);
      const head = new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD+$/, "");
      out.push(`~${head}~${digest}`);
    } else out.push(p);
  }
  return `mirrors/${client}/${out.join("/")}`;
}

export function stateKey(client: string): string {
  return `state/mirrors/${client}.json`;
}

/** s3://BUCKET/PREFIX for a restore target. */
export function parseS3Target(target: string): { bucket: string; prefix: string } | null {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(target);
  if (!m) return null;
  const prefix = m[2] ?? "";
  if (prefix.split("/").some((p) => p === ".." || p === ".")) return null;
  return { bucket: m[1], prefix };
}

export function normalizeEtag(etag: string | undefined): string {
  return (etag ?? "").replace(/^"|"$/g, "");
}

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

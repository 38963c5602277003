/** The newest RDB version a server of this version reads (and so accepts in RESTORE). */
export function rdbVersionFor(redisVersion: string): number {
  const [major, minor] = redisVersion.split(".").map(Number);
  const v = major * 100 + (minor || 0);
  if (v >= 704) return 12;
  if (v >= 702) return 11;
  if (v >= 700) return 10;
  if (v >= 500) return 9;
  if (v >= 400) return 8;
  if (v >= 302) return 7;
  return 6;
}

import { RedisConnection, RedisReplyError, text } from "./resp.ts";
import type { RedisTarget } from "./url.ts";

/** DEBUG DIGEST, or why the server would not give it. */
export type DigestReading = { digest: string } | { refused: string };

/**
 * The source's DEBUG DIGEST: a hash of every key, value and whether it expires
 * (redis' debug.c, computeDatasetDigest), the same for the same data whatever the
 * encoding. Redis 7 refuses DEBUG unless `enable-debug-command` allows it (default
 * `no`), and an ACL may forbid it: the refusal is returned, never thrown.
 */
export async function readDigest(target: RedisTarget): Promise<DigestReading> {
  const conn = await RedisConnection.open(target);
  try {
    const reply = await conn.command(["DEBUG", "DIGEST"]);
    if (reply instanceof RedisReplyError) return { refused: reply.message };
    const digest = text(reply);
    return /^[0-9a-f]{40}$/.test(digest)
      ? { digest }
      : { refused: `unexpected reply ${JSON.stringify(digest.slice(0, 60))}` };
  } finally {
    conn.close();
  }
}

/**
 * What the manifest records from the digests read before the snapshot and after it
 * was stored. The snapshot is the data at one moment between the two: when both are
 * equal, that moment's data hashed to the same digest, which is recorded; when they
 * differ (writes during the backup), no digest stands for the snapshot. Pure.
 */
export function digestFacts(
  before: DigestReading,
  after: DigestReading | null,
): { digest: string } | { digest_skipped: string } {
  if ("refused" in before) {
    return {
      digest_skipped: `the source refused DEBUG DIGEST (${before.refused}); ` +
        "set enable-debug-command to yes (or local when cairn connects over loopback) to record it",
    };
  }
  if (after === null || "refused" in after) {
    return {
      digest_skipped: `DEBUG DIGEST could not be read again after the snapshot${
        after ? ` (${after.refused})` : ""
      }`,
    };
  }
  if (after.digest !== before.digest) {
    return {
      digest_skipped:
        "the data changed while the snapshot was taken (DEBUG DIGEST before and after differ)",
    };
  }
  return { digest: before.digest };
}

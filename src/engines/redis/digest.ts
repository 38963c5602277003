import { keyspaceCounts } from "./scratch_server.ts";
import { parseInfo, RedisConnection, RedisReplyError, text } from "./resp.ts";
import type { RedisTarget } from "./url.ts";

/** DEBUG DIGEST, or why the server would not give it, or why it was not asked. */
export type DigestReading = { digest: string } | { refused: string } | { skipped: string };

/**
 * The source's DEBUG DIGEST: a hash of every key, value and whether it expires
 * (redis' debug.c, computeDatasetDigest), the same for the same data whatever the
 * encoding. The server hashes its whole dataset before it answers anything else
 * (3-5 s for 1,000,000 keys of 100 bytes here), so a source holding more than
 * `maxKeys` keys (INFO keyspace) is not asked. Redis 7 refuses DEBUG unless
 * `enable-debug-command` allows it (default `no`), and an ACL may forbid it: the
 * refusal is returned, never thrown.
 */
export async function readDigest(target: RedisTarget, maxKeys: number): Promise<DigestReading> {
  if (maxKeys === 0) return { skipped: "not recorded: record_digest_max_keys is 0" };
  const conn = await RedisConnection.open(target);
  try {
    const info = await conn.command(["INFO", "keyspace"]);
    if (info instanceof RedisReplyError) {
      // Without the count, DEBUG DIGEST could block a source of any size.
      return { skipped: `not recorded: the source refused INFO keyspace (${info.message})` };
    }
    if (maxKeys !== Infinity) {
      const keys = Object.values(keyspaceCounts(parseInfo(info))).reduce((a, b) => a + b, 0);
      if (keys > maxKeys) {
        return {
          skipped: `not recorded: the source holds ${keys} keys, more than ` +
            `record_digest_max_keys (${maxKeys}); DEBUG DIGEST would block it while it hashes them`,
        };
      }
    }
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
  if ("skipped" in before) return { digest_skipped: before.skipped };
  if ("refused" in before) {
    return {
      digest_skipped: `the source refused DEBUG DIGEST (${before.refused}); ` +
        "set enable-debug-command to yes (or local when cairn connects over loopback) to record it",
    };
  }
  if (after === null || !("digest" in after)) {
    const why = after === null ? "" : "refused" in after ? after.refused : after.skipped;
    return {
      digest_skipped: `DEBUG DIGEST could not be read again after the snapshot${
        why ? ` (${why})` : ""
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

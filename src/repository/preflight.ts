import type { Repository } from "./repository.ts";

/**
 * Proves the repository takes a write, with the verbs every write uses: puts a
 * small probe object and removes it. Fails with the put's or remove's error, which
 * names the repository and what was wrong (REPOSITORY_REFUSED for refused
 * credentials or a missing bucket, REPOSITORY_UNAVAILABLE for a read-only or
 * unreachable one, DISK_FULL). A process killed in between leaves the probe (a few
 * bytes under `.cairn-probe-<uuid>`).
 */
export async function checkWritable(repo: Repository): Promise<void> {
  const probe = `.cairn-probe-${crypto.randomUUID()}`;
  await repo.put(probe, ReadableStream.from([new TextEncoder().encode("probe")]));
  await repo.remove(probe);
}

import { join } from "node:path";
import { CairnError } from "../../errors.ts";
import { deadTags, ownerTag } from "../../io/process_id.ts";
import { logger } from "../../log.ts";
import { DONE_PREFIX, INCOMING_PREFIX, OLD_PREFIX, STAGING_PREFIX } from "./gnu_tar.ts";
import { moveEntries } from "./swap.ts";

/**
 * The tag of an in-place restore's side directories: `<pid>-<start>-<job>-<random>`,
 * so that anyone can tell later whether the process that made them still runs
 * (see io/process_id.ts ownerTag).
 */
export function restoreTag(jobId: number): string {
  return `${ownerTag()}-${jobId}-${crypto.randomUUID().slice(0, 8)}`;
}

const PREFIXES = [STAGING_PREFIX, INCOMING_PREFIX, OLD_PREFIX, DONE_PREFIX];

function tagOf(name: string): string | null {
  const prefix = PREFIXES.find((p) => name.startsWith(p));
  return prefix ? name.slice(prefix.length) : null;
}

export interface InterruptedReport {
  /** Tags of restores into this directory whose process still runs. */
  live: string[];
  /** Tags rolled back (or finished) here, their process being gone. */
  recovered: string[];
}

/**
 * Puts a directory back as it was before an in-place restore whose process died
 * (SIGKILL, power loss) part way: the state machine of swapContents, read from disk.
 * - `.cairn-restore-T` alone: extraction was under way; it is removed.
 * - `.cairn-old-T` beside `.cairn-restore-T`: old entries were moving out; they move
 *   back in.
 * - `.cairn-old-T` otherwise (`.cairn-incoming-T` or nothing): new entries were moving
 *   in; they go out again and the old ones move back.
 * Either way the directory holds exactly its pre-restore entries.
 * - `.cairn-done-T`: the swap had finished; only the replaced contents remain, removed.
 * Only tags whose process is known to be dead are touched; the rest are reported live.
 * Throws SOURCE_UNAVAILABLE when a rollback cannot complete (naming the directories).
 */
export async function recoverInterrupted(dir: string): Promise<InterruptedReport> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && tagOf(entry.name)) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { live: [], recovered: [] };
    throw error;
  }
  const tags = [...new Set(names.map((n) => tagOf(n)!))];
  if (tags.length === 0) return { live: [], recovered: [] };
  const dead = await deadTags(tags);
  const report: InterruptedReport = { live: [], recovered: [] };
  // Every side directory stays where it is while entries move.
  const keep = names;
  for (const tag of tags) {
    if (!dead.has(tag)) {
      report.live.push(tag);
      continue;
    }
    const staging = join(dir, STAGING_PREFIX + tag);
    const incoming = join(dir, INCOMING_PREFIX + tag);
    const old = join(dir, OLD_PREFIX + tag);
    const done = join(dir, DONE_PREFIX + tag);
    const has = (name: string) => names.includes(name);
    try {
      if (has(OLD_PREFIX + tag)) {
        // Staging still under its first name: only old entries had moved (out); else
        // the new ones were moving in, and what the directory holds beside them is new.
        if (!has(STAGING_PREFIX + tag)) {
          if (!has(INCOMING_PREFIX + tag)) await Deno.mkdir(incoming, { mode: 0o700 });
          await moveEntries(dir, incoming, keep.concat(INCOMING_PREFIX + tag));
        }
        await moveEntries(old, dir);
        await Deno.remove(old);
        logger.warn("Rolled back a restore that was interrupted part way", {
          path: dir,
          tag,
        });
      }
      for (const side of [staging, incoming]) {
        await Deno.remove(side, { recursive: true }).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
      }
      await Deno.remove(done, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
      report.recovered.push(tag);
    } catch (error) {
      throw new CairnError(
        "SOURCE_UNAVAILABLE",
        `An interrupted restore into ${dir} could not be rolled back (${
          (error as Error).message
        }): its previous contents are in ${old}; move them back into ${dir} by hand`,
        { cause: error },
      );
    }
  }
  return report;
}

/**
 * recoverInterrupted, then refuses while another process is restoring into `dir`:
 * backing up or restoring a directory half swapped would capture or clobber it.
 */
export async function settleInterrupted(dir: string, doing: string): Promise<void> {
  const { live } = await recoverInterrupted(dir);
  if (live.length > 0) {
    throw new CairnError(
      "SOURCE_UNAVAILABLE",
      `A restore into ${dir} is in progress (${live.join(", ")}): ${doing} waits until it ends`,
    );
  }
}

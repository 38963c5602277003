import { join } from "node:path";
import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { DONE_PREFIX, INCOMING_PREFIX, OLD_PREFIX, STAGING_PREFIX } from "./gnu_tar.ts";
import { runCommand } from "../process.ts";

/**
 * Moves every entry of `from` (except the names in `keep`) into `to`, by rename, with
 * GNU find and mv: Deno cannot name a file whose name is not UTF-8 (NOTES.md), so
 * cairn never lists these names itself. Both directories are on one filesystem.
 * Throws an INTERNAL error with mv's message when an entry cannot be moved
 * (a mount point, for one); the entries moved until then stay moved.
 */
export async function moveEntries(from: string, to: string, keep: string[] = []): Promise<void> {
  const args = [from, "-mindepth", "1", "-maxdepth", "1"];
  for (const name of keep) args.push("!", "-name", name);
  args.push("-exec", "mv", "-t", to, "--", "{}", "+");
  // setpriv --pdeathsig: find stops with cairn, so a killed restore leaves a state that
  // recoverInterrupted can read, not a move still running behind its back.
  const out = await runCommand("setpriv", ["--pdeathsig", "KILL", "--", "find", ...args], {
    env: { LC_ALL: "C" },
    stdout: "null",
  });
  if (!out.success) {
    throw new CairnError(
      "INTERNAL",
      `Could not move the entries of ${from} into ${to}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

/**
 * Replaces the entries of `target` with those of `target/<STAGING_PREFIX><tag>`,
 * keeping `target` itself (its inode, a mount point). The phases are named on disk so
 * that recoverInterrupted (interrupted.ts) can finish or undo a swap whose process
 * died: old entries move into `<OLD_PREFIX><tag>`; then staging is renamed
 * `<INCOMING_PREFIX><tag>` and its entries move in; then old is renamed
 * `<DONE_PREFIX><tag>` and removed. A failure here rolls back at once.
 */
export async function swapContents(target: string, tag: string): Promise<void> {
  const staging = join(target, STAGING_PREFIX + tag);
  const incoming = join(target, INCOMING_PREFIX + tag);
  const old = join(target, OLD_PREFIX + tag);
  const done = join(target, DONE_PREFIX + tag);
  const sides = [STAGING_PREFIX + tag, INCOMING_PREFIX + tag, OLD_PREFIX + tag];
  await Deno.mkdir(old, { mode: 0o700 });
  try {
    await moveEntries(target, old, sides);
  } catch (error) {
    await rollback(() => moveEntries(old, target), old);
    throw error;
  }
  try {
    await Deno.rename(staging, incoming);
    await moveEntries(incoming, target);
  } catch (error) {
    await rollback(async () => {
      await Deno.mkdir(incoming, { mode: 0o700 }).catch(() => {});
      await moveEntries(target, incoming, sides);
      await moveEntries(old, target);
      await Deno.remove(incoming, { recursive: true });
    }, old);
    throw error;
  }
  await Deno.remove(incoming);
  await Deno.rename(old, done);
  await Deno.remove(done, { recursive: true }).catch((error) =>
    logger.warn("Could not remove the replaced contents after a restore", {
      path: done,
      error: String(error),
    })
  );
}

async function rollback(undo: () => Promise<void>, old: string): Promise<void> {
  try {
    await undo();
    await Deno.remove(old);
  } catch (error) {
    logger.error("A failed restore could not put the old contents back", {
      path: old,
      error: String(error),
    });
  }
}

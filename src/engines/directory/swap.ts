import { join } from "node:path";
import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
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
  const out = await runCommand("find", args, { env: { LC_ALL: "C" }, stdout: "null" });
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
 * Replaces the contents of `target` by those of `staging` (a directory inside it),
 * keeping `target` itself (its inode, owner, mode and any mount on it). The old
 * entries go aside into `target/<oldName>` first and are removed once the new ones are
 * in. On any failure every entry is moved back where it was and the error is thrown.
 */
export async function swapContents(
  target: string,
  stagingName: string,
  oldName: string,
): Promise<void> {
  const staging = join(target, stagingName);
  const old = join(target, oldName);
  await Deno.mkdir(old, { mode: 0o700 });
  try {
    await moveEntries(target, old, [stagingName, oldName]);
  } catch (error) {
    await rollback(() => moveEntries(old, target), old);
    throw error;
  }
  try {
    await moveEntries(staging, target);
  } catch (error) {
    await rollback(async () => {
      await moveEntries(target, staging, [stagingName, oldName]);
      await moveEntries(old, target);
    }, old);
    throw error;
  }
  await Deno.remove(old, { recursive: true }).catch((error) =>
    logger.warn("Could not remove the replaced contents after a restore", {
      path: old,
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

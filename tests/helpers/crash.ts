import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite.ts";

/** Every file under `root` (relative paths), or [] when it does not exist. */
export async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(join(dir, e.name), r);
      else out.push(r);
    }
  };
  await walk(root, "");
  return out.sort();
}

/** What `backups/` of an fs repository holds: artifact keys with and without manifests. */
export async function repoState(repo: string) {
  const files = (await filesUnder(join(repo, "backups"))).map((f) => `backups/${f}`);
  const manifests = new Set(
    files.filter((f) => f.endsWith(".manifest.json")).map((f) => f.slice(0, -14)),
  );
  const artifacts = files.filter((f) => !f.endsWith(".manifest.json"));
  return {
    artifacts,
    manifests,
    orphans: artifacts.filter((a) => !manifests.has(a)),
    tmp: await filesUnder(join(repo, ".tmp")),
  };
}

/**
 * Watches `dir` (inotify) and freezes `pid` with SIGSTOP the moment a file whose name
 * `match` accepts appears there: the process is stopped within microseconds of the
 * rename, before its next step. Resolves with the name; the caller then checks the
 * state it wanted and kills or continues the process.
 */
export function freezeWhen(
  dir: string,
  match: (name: string) => boolean,
  pid: () => number,
): { frozen: Promise<string>; close: () => void } {
  const watcher = Deno.watchFs(dir, { recursive: false });
  const frozen = (async () => {
    for await (const event of watcher) {
      const hit = event.paths.find((p) => match(p.slice(p.lastIndexOf("/") + 1)));
      if (hit) {
        Deno.kill(pid(), "SIGSTOP");
        return hit.slice(hit.lastIndexOf("/") + 1);
      }
    }
    throw new Error(`stopped watching ${dir} before a match`);
  })();
  return {
    frozen,
    close: () => {
      try {
        watcher.close();
      } catch { /* closed */ }
    },
  };
}

/** The job store as the daemon writes it, opened by the test to read jobs. */
export function openStore(dir: string): Promise<SqliteStore> {
  return SqliteStore.open(join(dir, "cairn.db"));
}

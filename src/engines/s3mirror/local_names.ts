/**
 * Where a restore into a local directory writes each object of a mirror run. Pure:
 * no I/O.
 *
 * A key becomes the relative path of the same text (`photos/2024/1.jpg`), so the
 * directory looks like the bucket. A key has no such path when a segment is empty,
 * `.` or `..` (it would name another place, or leave the target), holds NUL, or is
 * over 255 bytes (NAME_MAX); or when an object's path is a directory another
 * object's path needs (`photos` beside `photos/1.jpg`: a file and a directory
 * cannot share a name). Those objects are named, never written elsewhere: restore
 * them into a bucket. A key ending in `/` (a console "folder") of size 0 is a
 * directory.
 */
export interface LocalPlan {
  /** Files to write: key, relative path. */
  files: Array<{ key: string; path: string }>;
  /** Directories for folder markers (relative paths). */
  dirs: string[];
  /** Keys with no file name in a directory, and why. */
  unplaceable: Array<{ key: string; reason: string }>;
}

const NAME_MAX = 255;
const encoder = new TextEncoder();

/** Why `key` has no faithful relative path, or null. */
export function localKeyProblem(key: string, size: number): string | null {
  const folder = key.endsWith("/") && size === 0;
  const segments = (folder ? key.slice(0, -1) : key).split("/");
  if (key.includes("\0")) return "the key holds a NUL byte";
  for (const s of segments) {
    if (s === "") return "the key has an empty segment (a leading, doubled or trailing '/')";
    if (s === "." || s === "..") return `the key has a '${s}' segment`;
    if (encoder.encode(s).byteLength > NAME_MAX) {
      return `a segment is over ${NAME_MAX} bytes (NAME_MAX)`;
    }
  }
  return null;
}

/** The paths for every listed object (in the listing's order). */
export function planLocal(objects: Array<{ key: string; size: number }>): LocalPlan {
  const plan: LocalPlan = { files: [], dirs: [], unplaceable: [] };
  const needed = new Set<string>(); // every directory some object's path goes through
  const ok: Array<{ key: string; path: string; dir: boolean }> = [];
  for (const o of objects) {
    const problem = localKeyProblem(o.key, o.size);
    if (problem) {
      plan.unplaceable.push({ key: o.key, reason: problem });
      continue;
    }
    const dir = o.key.endsWith("/");
    const path = dir ? o.key.slice(0, -1) : o.key;
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) needed.add(parts.slice(0, i).join("/"));
    ok.push({ key: o.key, path, dir });
  }
  for (const o of ok) {
    if (o.dir) plan.dirs.push(o.path);
    else if (needed.has(o.path)) {
      plan.unplaceable.push({
        key: o.key,
        reason: `other objects need '${o.path}' as a directory`,
      });
    } else plan.files.push({ key: o.key, path: o.path });
  }
  return plan;
}

/**
 * Trees with names Deno cannot represent (not UTF-8), built and compared through
 * python3, which works on raw bytes: Deno turns such names into U+FFFD (NOTES.md).
 */

async function python(script: string, args: string[]): Promise<string> {
  const out = await new Deno.Command("python3", {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`python3 failed: ${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

/** Runs a python3 snippet with `root` (bytes) bound and the working directory at it. */
export async function pyBuild(root: string, body: string): Promise<void> {
  await python(
    `import os, sys, socket, stat\nroot = os.fsencode(sys.argv[1])\nos.makedirs(root, exist_ok=True)\nos.chdir(root)\n${body}`,
    [root],
  );
}

const LISTER = `
import os, sys, stat, hashlib
root = os.fsencode(sys.argv[1])
skip_mtime_root = sys.argv[2] == "1"
out = []
inodes = {}
def describe(rel, full):
    st = os.lstat(full)
    m = st.st_mode
    t = ("d" if stat.S_ISDIR(m) else "l" if stat.S_ISLNK(m) else "f" if stat.S_ISREG(m)
         else "p" if stat.S_ISFIFO(m) else "s" if stat.S_ISSOCK(m) else "?")
    parts = [repr(rel), t, oct(stat.S_IMODE(m)), "%d:%d" % (st.st_uid, st.st_gid)]
    if not (rel == b"." and skip_mtime_root):
        parts.append("mtime=%d" % st.st_mtime_ns)
    if t == "f":
        if st.st_nlink > 1:
            first = inodes.setdefault((st.st_dev, st.st_ino), rel)
            parts.append("nlink=%d same-as=%r" % (st.st_nlink, first))
        h = hashlib.sha256()
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        parts.append("size=%d sha256=%s" % (st.st_size, h.hexdigest()[:16]))
    if t == "l":
        parts.append("-> %r" % os.readlink(full))
    if t in "fd":
        names = sorted(n for n in os.listxattr(full, follow_symlinks=False) if n.startswith("user."))
        for n in names:
            parts.append("xattr %s=%r" % (n, os.getxattr(full, n, follow_symlinks=False)))
    out.append(" ".join(parts))
    if t == "d":
        for name in sorted(os.listdir(full)):
            describe(name if rel == b"." else rel + b"/" + name, full + b"/" + name)
describe(b".", root)
print("\\n".join(out))
`;

/**
 * Every entry under `root` (the root itself as '.'), one line each: the name's raw
 * bytes, type, mode (all 12 bits), uid:gid, mtime in ns, and for files the link count
 * and which earlier path shares the inode, size and sha256; symlink targets; user.*
 * xattrs. Equal listings mean equal trees.
 */
export async function listTree(
  root: string,
  options: { rootMtime?: boolean } = {},
): Promise<string[]> {
  const text = await python(LISTER, [root, options.rootMtime === false ? "1" : "0"]);
  return text.split("\n").filter(Boolean);
}

/** Space a file takes on disk, in bytes (st_blocks * 512). */
export async function diskUsage(path: string): Promise<number> {
  const text = await python(
    "import os, sys\nprint(os.lstat(sys.argv[1]).st_blocks * 512)",
    [path],
  );
  return Number(text.trim());
}

/** Whether `path` is a mount point (its device differs from its parent's). */
export async function isMountPoint(path: string): Promise<boolean> {
  const out = await new Deno.Command("mountpoint", { args: ["-q", path] }).output();
  return out.success;
}

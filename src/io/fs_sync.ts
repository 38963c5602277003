/**
 * fsync a directory, so a rename inside it survives a crash. Some filesystems refuse
 * fsync on directories; the rename is still atomic there, so that is not an error.
 */
export function syncDirSync(path: string): void {
  try {
    const dir = Deno.openSync(path, { read: true });
    try {
      dir.syncSync();
    } finally {
      dir.close();
    }
  } catch { /* see above */ }
}

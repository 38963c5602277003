import { loadKeys, recipientsOf } from "../pipeline/identity.ts";
import type { HostIdentities } from "./encryption.ts";

/** What identifies one version of the identity file: a rewrite changes at least one. */
interface FileStamp {
  path: string;
  mtimeMs: number | null;
  size: number;
  ino: number | null;
}

const sameStamp = (a: FileStamp, b: FileStamp) =>
  a.path === b.path && a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;

/**
 * Reads an identity file into the recipients it opens: the file parsed as loadKeys
 * does (age key lines, `#` comments), each identity's public key derived with
 * age-encryption's identityToRecipient. Throws CONFIG_INVALID naming the file.
 */
export async function readHostRecipients(path: string): Promise<string[]> {
  return await recipientsOf((await loadKeys({ identity_file: path })).identities);
}

/**
 * The recipients this host's identity file opens, for the dashboard's "can this host
 * decrypt it". One stat per call; the file is read and its keys derived again only when
 * its path, mtime, size or inode changed, so a page of 200 backups costs one stat, and
 * a key put in place (or removed) shows on the next page load without a restart.
 */
export class HostIdentityCache {
  #cached: { stamp: FileStamp; value: HostIdentities } | null = null;

  constructor(private readonly read: (path: string) => Promise<string[]> = readHostRecipients) {}

  /** `identityFile` is repository.encryption.identity_file (undefined when not set). */
  async get(identityFile: string | undefined): Promise<HostIdentities> {
    if (!identityFile) {
      this.#cached = null;
      return { identityFile: null, recipients: [], problem: null };
    }
    let stamp: FileStamp;
    try {
      const info = await Deno.stat(identityFile);
      stamp = {
        path: identityFile,
        mtimeMs: info.mtime?.getTime() ?? null,
        size: info.size,
        ino: info.ino,
      };
    } catch (error) {
      // Not cached: the file may appear at any moment.
      this.#cached = null;
      return {
        identityFile,
        recipients: [],
        problem: error instanceof Deno.errors.NotFound
          ? "it does not exist"
          : (error as Error).message,
      };
    }
    if (this.#cached && sameStamp(this.#cached.stamp, stamp)) return this.#cached.value;
    let value: HostIdentities;
    try {
      value = { identityFile, recipients: await this.read(identityFile), problem: null };
    } catch (error) {
      value = { identityFile, recipients: [], problem: (error as Error).message };
    }
    this.#cached = { stamp, value };
    return value;
  }
}

import { createHash } from "node:crypto";
import { z } from "zod";
import type { Repository } from "../../repository/repository.ts";
import { type Transform, TransformSchema } from "../../pipeline/transforms.ts";

/**
 * Dedup of a mirror's stored copies where the repository can link (fs: hard links):
 * a fresh copy whose plain bytes another stored copy already holds *the same way*
 * (plain, or age to the same recipients) is replaced by a link to that copy, so the
 * content occupies the disk once whatever keys and runs hold it. Pure bookkeeping
 * here; the engine links and checks the bytes.
 *
 * Never on ETags (MD5, or not even that for multipart uploads: they collide): only
 * on the plain sha256 computed while every byte was copied.
 */

/** A stored file holding some content: its key, and the stored bytes' size and sha256. */
export interface StoredFile {
  key: string;
  size: number;
  sha256: string;
}

/**
 * The transforms in a form where equal means "stored the same way": recipients are a
 * set (any order wraps the file key for the same identities), levels and names kept.
 */
function canonicalTransforms(transforms: readonly Transform[]): string {
  return JSON.stringify(
    transforms.map((t) =>
      t.name === "age" ? { name: t.name, recipients: [...new Set(t.recipients)].sort() } : t
    ),
  );
}

/**
 * The identity of content as stored: its plain sha256 and how it is stored. Copies
 * of the same plain bytes stored differently (plain beside encrypted, or encrypted
 * for other recipients) never share a file.
 */
export function contentKey(sha256: string, transforms: readonly Transform[]): string {
  return `${sha256} ${canonicalTransforms(transforms)}`;
}

/** Stored files worth trying per content: more add reads, not savings. */
const CANDIDATES_PER_CONTENT = 4;

/**
 * Where each content is stored, newest first. A hint only: a file may have been
 * replaced or removed since it was noted, so the linker checks the bytes it gets
 * (size and sha256 of the stored file) before it links.
 */
export class ContentIndex {
  #files = new Map<string, StoredFile[]>();

  /** Notes that `file` holds `content` (contentKey), ahead of what was noted before. */
  add(content: string, file: StoredFile): void {
    const others = (this.#files.get(content) ?? []).filter((f) => f.key !== file.key);
    this.#files.set(content, [file, ...others].slice(0, CANDIDATES_PER_CONTENT));
  }

  /** Forgets that `key` holds `content` (it was found to hold something else, or nothing). */
  drop(content: string, key: string): void {
    const left = (this.#files.get(content) ?? []).filter((f) => f.key !== key);
    if (left.length) this.#files.set(content, left);
    else this.#files.delete(content);
  }

  /** The files noted for `content`, newest first, other than `except` (the key being linked). */
  candidates(content: string, except: string): StoredFile[] {
    return (this.#files.get(content) ?? []).filter((f) => f.key !== except);
  }
}

/**
 * How each kept version of a mirror is stored, which its file alone does not say
 * for an age file (an X25519 stanza names no recipient): `state/mirror-versions/<client>.json`,
 * keyed by plain sha256. Written by the runs that keep versions where the repository
 * links; read to link a copy whose content came back (X, then Y, then X again) to
 * the version kept of it. A hint like ContentIndex: a version collected since, or
 * replaced, fails the linker's check and the run keeps its own copy.
 */
const VersionHintSchema = z.object({
  transforms: z.array(TransformSchema),
  stored_size: z.number().int().nonnegative(),
  stored_sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type VersionHint = z.infer<typeof VersionHintSchema>;

const VersionHintsSchema = z.object({
  format_version: z.literal(1),
  versions: z.record(z.string().regex(/^[0-9a-f]{64}$/), VersionHintSchema),
});

export function versionHintsKey(client: string): string {
  return `state/mirror-versions/${client}.json`;
}

/**
 * The client's version hints; empty when there are none or they cannot be read (they
 * only save space: a run without them stores its copies as it would without links).
 */
export async function readVersionHints(
  repo: Repository,
  client: string,
): Promise<Map<string, VersionHint>> {
  try {
    const key = versionHintsKey(client);
    if (!(await repo.stat(key))) return new Map();
    const parsed = VersionHintsSchema.safeParse(
      JSON.parse(await new Response(await repo.get(key)).text()),
    );
    return parsed.success ? new Map(Object.entries(parsed.data.versions)) : new Map();
  } catch {
    return new Map();
  }
}

export async function writeVersionHints(
  repo: Repository,
  client: string,
  hints: Map<string, VersionHint>,
): Promise<void> {
  const body = JSON.stringify({ format_version: 1, versions: Object.fromEntries(hints) });
  await repo.put(versionHintsKey(client), ReadableStream.from([new TextEncoder().encode(body)]));
}

/**
 * Drops the hints of versions that are gone (collected), so the hints do not grow
 * with every version ever kept. Changes nothing when none of them is hinted.
 */
export async function forgetVersionHints(
  repo: Repository,
  client: string,
  shas: ReadonlySet<string>,
): Promise<void> {
  const hints = await readVersionHints(repo, client);
  const before = hints.size;
  for (const sha of shas) hints.delete(sha);
  if (hints.size !== before) await writeVersionHints(repo, client, hints);
}

/**
 * Whether `body` is exactly the stored file `want` (its size and sha256): read to the
 * end, or stopped as soon as it is longer.
 */
export async function holdsFile(
  body: ReadableStream<Uint8Array>,
  want: { size: number; sha256: string },
): Promise<boolean> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > want.size) return false; // leaving the loop cancels the stream
    hash.update(chunk);
  }
  return size === want.size && hash.digest("hex") === want.sha256;
}

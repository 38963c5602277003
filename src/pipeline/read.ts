import { join } from "node:path";
import type { Scratch } from "../io/scratch.ts";
import { removeScratch } from "../io/scratch.ts";
import { verifyingStream } from "../io/hashing.ts";
import { parseKey } from "../repository/keys.ts";
import { type Manifest, readManifest } from "../repository/manifest.ts";
import { CairnError } from "../errors.ts";
import type { Repository } from "../repository/repository.ts";
import { writeStreamToFile } from "../engines/fs_util.ts";
import { decodeAll } from "./codec.ts";
import { isEncrypted, legacyTransforms, type Transform } from "./transforms.ts";

/** A checked plain copy of the artifact for a tool that needs a file. */
export interface PlainFile {
  path: string;
  /** Removes the copy (and its scratch directory). */
  release: () => Promise<void>;
}

/**
 * How an engine reads the artifact it restores or verifies: the plain artifact only,
 * never the stored bytes.
 */
export interface ArtifactAccess {
  /**
   * The plain artifact as a stream. Every stored byte has been proven against the
   * manifest's sha256 by a full pass before the first plain byte is handed over (so
   * the decoders only ever see the bytes cairn wrote); the decoded stream is checked
   * against the plain sha256 as it comes and errors at its end, holding back its last
   * chunk, should anything differ.
   */
  open: () => Promise<ReadableStream<Uint8Array>>;
  /** Runs that full pass over the stored bytes (once; later calls share it). */
  check: () => Promise<void>;
  /**
   * The plain artifact as a private scratch file under the scratch root, whole and
   * checked before this returns (for pg_restore -L/-j, SQLite). The caller releases it.
   */
  file: () => Promise<PlainFile>;
}

/** The transforms a manifest's artifact went through, including format-1 manifests'. */
export function artifactTransforms(manifest: Manifest): Transform[] {
  return manifest.transforms ?? legacyTransforms(parseKey(manifest.key).ext);
}

export interface ReadOptions {
  identities: string[];
  scratch: Scratch;
  signal: AbortSignal;
  progress?: (update: { bytes_done: number; bytes_total?: number | null; phase: string }) => void;
}

/**
 * The stored bytes checked against the manifest's sha256 and size, as they come.
 */
async function storedStream(
  repo: Repository,
  manifest: Manifest,
  progress: ReadOptions["progress"],
  phase: string,
): Promise<ReadableStream<Uint8Array>> {
  return (await repo.get(manifest.key)).pipeThrough(
    verifyingStream(
      { sha256: manifest.sha256, size: manifest.size_bytes, key: manifest.key },
      (bytes) => progress?.({ bytes_done: bytes, bytes_total: manifest.size_bytes, phase }),
    ),
  );
}

/** The plain artifact, decoded and (where recorded) checked against the plain sha256. */
async function plainStream(
  repo: Repository,
  manifest: Manifest,
  options: Pick<ReadOptions, "identities" | "progress">,
  phase: string,
): Promise<ReadableStream<Uint8Array>> {
  const stored = await storedStream(repo, manifest, options.progress, phase);
  const plain = await decodeAll(stored, artifactTransforms(manifest), options.identities);
  if (manifest.plain_sha256 === undefined || manifest.plain_size_bytes === undefined) {
    return plain;
  }
  return plain.pipeThrough(
    verifyingStream({
      sha256: manifest.plain_sha256,
      size: manifest.plain_size_bytes,
      key: `${manifest.key} (decoded)`,
    }),
  );
}

async function drain(stream: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      signal.throwIfAborted();
      if ((await reader.read()).done) return;
    }
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/**
 * Checks the stored bytes only (their sha256 and size), with no identity: what a
 * write-only host can prove about an encrypted backup.
 */
export async function checkStored(
  repo: Repository,
  manifest: Manifest,
  options: Pick<ReadOptions, "signal" | "progress">,
): Promise<void> {
  await drain(await storedStream(repo, manifest, options.progress, "checking"), options.signal);
}

/** The ArtifactAccess of one backup (see ArtifactAccess). */
export function artifactAccess(
  repo: Repository,
  manifest: Manifest,
  options: ReadOptions,
): ArtifactAccess {
  // Stored bytes are proven before any reaches a decoder: node:zlib's zstd decoder
  // in Deno 2.9.6 throws some errors on damaged input (a corrupt block) outside any
  // handler, which would take the process down (see docs/pipeline.md).
  let checking: Promise<void> | null = null;
  const check = () => checking ??= checkStored(repo, manifest, options);
  return {
    check,
    open: async () => {
      await check();
      return await plainStream(repo, manifest, options, "reading");
    },
    file: async () => {
      const dir = await options.scratch.dir("artifact-");
      const path = join(dir, "plain");
      try {
        await check();
        // The copy is complete only if the verifying stream reached its end unharmed.
        await writeStreamToFile(
          await plainStream(repo, manifest, options, "reading"),
          path,
          options.signal,
        );
      } catch (error) {
        await removeScratch(dir);
        throw error;
      }
      return { path, release: () => removeScratch(dir) };
    },
  };
}

/**
 * The plain bytes of the artifact at `key`, for a reader that is not an engine (the
 * mirror's version collection reads listings this way). With its manifest: every
 * stored byte proven first, then decoded and checked against the plain sha256, as
 * ArtifactAccess.open. Without one (a run being written, or a delete that stopped
 * half way): the stored bytes as they are when the key names no transform (nothing to
 * decode, nothing recorded to check against); VERIFY_FAILED when it names some, as
 * no decoder is handed bytes nothing vouches for (see artifactAccess).
 */
export async function readArtifact(
  repo: Repository,
  key: string,
  options: { identities: string[]; signal: AbortSignal },
): Promise<ReadableStream<Uint8Array>> {
  let manifest: Manifest;
  try {
    manifest = await readManifest(repo, key);
  } catch (error) {
    if (!(error instanceof CairnError && error.code === "BACKUP_NOT_FOUND")) throw error;
    const parsed = parseKey(key);
    if (parsed.compression === null && !parsed.encrypted) return await repo.get(key);
    throw new CairnError(
      "VERIFY_FAILED",
      `${key} has no manifest, so its stored bytes cannot be checked before they are decoded`,
    );
  }
  await checkStored(repo, manifest, options);
  return await plainStream(repo, manifest, options, "reading");
}

export { isEncrypted };

import { join } from "node:path";
import type { Scratch } from "../io/scratch.ts";
import { removeScratch } from "../io/scratch.ts";
import { digestMismatch, verifyingStream } from "../io/hashing.ts";
import { CairnError } from "../errors.ts";
import { parseKey } from "../repository/keys.ts";
import { type Manifest, readManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { decodeAll } from "./codec.ts";
import { codecPass, OFF_THREAD_MIN_BYTES, type PassResult } from "./offthread.ts";
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
   * the main thread's decoders only ever see the bytes cairn wrote; large artifacts
   * are decoded in a worker); the decoded stream is checked against the plain sha256
   * as it comes and errors at its end, holding back its last chunk, should anything
   * differ.
   */
  open: () => Promise<ReadableStream<Uint8Array>>;
  /** Runs that full pass over the stored bytes (once; later calls share it). */
  check: () => Promise<void>;
  /**
   * The plain artifact as a private scratch file under the scratch root, whole and
   * checked (stored and plain sha256) before this returns, for pg_restore -L/-j, SQLite
   * and the Redis replay. Written from one read of the stored bytes when they are
   * decoded in a worker; the caller releases it.
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
  return withPlainCheck(plain, manifest);
}

function withPlainCheck(
  plain: ReadableStream<Uint8Array>,
  manifest: Manifest,
): ReadableStream<Uint8Array> {
  const expected = plainExpected(manifest);
  return expected === null ? plain : plain.pipeThrough(verifyingStream(expected));
}

function plainExpected(manifest: Manifest) {
  if (manifest.plain_sha256 === undefined || manifest.plain_size_bytes === undefined) return null;
  return {
    sha256: manifest.plain_sha256,
    size: manifest.plain_size_bytes,
    key: `${manifest.key} (decoded)`,
  };
}

/**
 * What one pass over the stored bytes proved, in order of what went wrong first: the
 * stored bytes against the manifest's sha256 (damage is reported as damage, whatever
 * the decoder or a parser made of it), then the codec's own failure, then the plain
 * bytes against the plain sha256.
 */
function passVerdict(manifest: Manifest, result: PassResult): CairnError | null {
  const stored = { sha256: manifest.sha256, size: manifest.size_bytes, key: manifest.key };
  const expected = plainExpected(manifest);
  return digestMismatch(stored, result.input) ?? result.error ??
    (expected && digestMismatch(expected, result.output!)) ?? null;
}

/**
 * The plain artifact from one read of the stored bytes, decoded in a worker that
 * hashes both sides (offthread.ts). The last chunk is held back until both sha256s
 * match the manifest, and a failure anywhere is reported as passVerdict orders it.
 * Bytes before the last are not proven when handed over: a caller that changes a
 * target with them must prove the stored bytes first (ArtifactAccess.open does).
 */
async function workerPlainStream(
  repo: Repository,
  manifest: Manifest,
  options: ReadOptions,
  phase: string,
): Promise<ReadableStream<Uint8Array>> {
  let done = 0;
  const counted = (await repo.get(manifest.key)).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        done += chunk.byteLength;
        options.progress?.({ bytes_done: done, bytes_total: manifest.size_bytes, phase });
        controller.enqueue(chunk);
      },
    }),
  );
  const pass = codecPass(counted, "decode", artifactTransforms(manifest), {
    identities: options.identities,
    ownInput: true,
  });
  const reader = pass.output.getReader();
  const settle = async () => {
    const bad = passVerdict(manifest, await pass.result);
    if (bad) throw bad;
  };
  let held: Uint8Array | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          await settle(); // damaged stored bytes are named as such
          throw error;
        }
        if (next.done) {
          await settle();
          if (held) controller.enqueue(held);
          held = null;
          return controller.close();
        }
        const previous = held;
        held = next.value;
        if (previous) return controller.enqueue(previous);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * The plain artifact in one pass over the stored bytes, verified as it goes and
 * failing at its end (last chunk held back) should anything differ. Decoders never
 * see unproven stored bytes on the main thread: large encoded artifacts are decoded
 * in a worker; small ones get the stored-bytes check first (a second, short read).
 * Plain artifacts (no transforms) need no decoder and are hashed once.
 */
async function onePassPlain(
  repo: Repository,
  manifest: Manifest,
  options: ReadOptions,
  check: () => Promise<void>,
  phase: string,
): Promise<ReadableStream<Uint8Array>> {
  const transforms = artifactTransforms(manifest);
  if (transforms.length > 0 && manifest.size_bytes >= OFF_THREAD_MIN_BYTES) {
    return await workerPlainStream(repo, manifest, options, phase);
  }
  if (transforms.length > 0) {
    await check();
    return await plainStream(repo, manifest, options, phase);
  }
  const stored = await storedStream(repo, manifest, options.progress, phase);
  // Without transforms the plain bytes are the stored ones: one hash proves both.
  const same = manifest.plain_sha256 === undefined ||
    (manifest.plain_sha256 === manifest.sha256 &&
      manifest.plain_size_bytes === manifest.size_bytes);
  return same ? stored : withPlainCheck(stored, manifest);
}

/**
 * Writes a stream to a new private file. No fsync: the copy is scratch, read back at
 * once and removed afterwards, and a crash leaves it to the scratch sweep.
 */
async function writeScratch(
  stream: ReadableStream<Uint8Array>,
  path: string,
  signal: AbortSignal,
): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  const reader = stream.getReader();
  try {
    for (;;) {
      signal.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      let off = 0;
      while (off < value.byteLength) off += await file.write(value.subarray(off));
    }
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    file.close();
  }
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
  let checking: Promise<void> | null = null;
  const check = () => checking ??= checkStored(repo, manifest, options);
  return {
    check,
    open: async () => {
      // A stream may change a target as it goes (tar -x): every stored byte is proven
      // first, then decoded (in a worker when large) and checked against the plain sha256.
      await check();
      const transforms = artifactTransforms(manifest);
      if (transforms.length > 0 && manifest.size_bytes >= OFF_THREAD_MIN_BYTES) {
        return await workerPlainStream(repo, manifest, options, "reading");
      }
      return await plainStream(repo, manifest, options, "reading");
    },
    file: async () => {
      const dir = await options.scratch.dir("artifact-");
      const path = join(dir, "plain");
      try {
        // One read: the copy is a scratch file, not the target, and is handed over only
        // once the stream reached its end unharmed (both sha256s proven).
        await writeScratch(
          await onePassPlain(repo, manifest, options, check, "reading"),
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

/** What a verify gets: the kind's access, and the verdict on the whole artifact. */
export interface VerifyAccess {
  access: ArtifactAccess;
  /**
   * Reads whatever the kind's check left of the one pass (or the whole pass, if it
   * opened nothing) and throws CHECKSUM_MISMATCH unless the stored and the plain bytes
   * match the manifest. A verify's result counts only once this passed; its failure
   * takes precedence over the kind's (a damaged artifact is reported as damaged, not
   * as whatever its parser tripped over).
   */
  settle: () => Promise<void>;
}

/**
 * One read of the stored artifact for a verify: the first `open()` is the one pass
 * (stored sha256, decode in a worker, plain sha256), handed to the kind's check as it
 * comes. Nothing is changed by a verify, so the kind may see bytes before they are
 * proven; settle() gives the verdict. The kind may stop reading early (pg_restore
 * --list reads the head): settle() reads the rest. Later `open()`s and `file()` are
 * ArtifactAccess's own.
 */
export function verifyingAccess(
  repo: Repository,
  manifest: Manifest,
  options: ReadOptions,
): VerifyAccess {
  const base = artifactAccess(repo, manifest, options);
  let pass: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let proven = false;
  const startPass = async () => {
    pass = (await onePassPlain(repo, manifest, options, base.check, "verifying")).getReader();
    return pass;
  };
  return {
    access: {
      check: base.check,
      file: async () => {
        const file = await base.file();
        proven = true; // file() read the whole artifact and proved it
        return file;
      },
      open: async () => {
        if (pass !== null) return await base.open();
        const reader = await startPass();
        // The kind's cancel leaves the pass running: settle() reads it to its end.
        return new ReadableStream<Uint8Array>({
          async pull(controller) {
            const next = await reader.read();
            if (next.done) controller.close();
            else controller.enqueue(next.value);
          },
        }, { highWaterMark: 0 });
      },
    },
    settle: async () => {
      if (pass === null && proven) return;
      const reader = pass ?? await startPass();
      try {
        for (;;) {
          options.signal.throwIfAborted();
          if ((await reader.read()).done) return;
        }
      } catch (error) {
        reader.cancel(error).catch(() => {});
        throw error;
      }
    },
  };
}

export { isEncrypted };

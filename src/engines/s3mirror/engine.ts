import { dirname, join, resolve } from "node:path";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError, isCairnError } from "../../errors.ts";
import { unseen } from "../../lazy.ts";
import { logger } from "../../log.ts";
import { isEncrypted } from "../../pipeline/transforms.ts";
import { requireIdentityFor } from "../../pipeline/identity.ts";
import { VERSION } from "../../version.ts";
import type {
  BackupFacts,
  Engine,
  EngineContext,
  RestoreRequest,
  VerifyRequest,
} from "../engine.ts";
import { forEachConcurrently } from "../../io/pool.ts";
import { parseS3Target } from "./keys.ts";
import { listingStream, type MirrorEntry, parseListing, readState, writeState } from "./listing.ts";
import { storedObjectKey } from "./object_names.ts";
import type { S3Source, SourceObject } from "./source.ts";
import { checkMassDelete } from "./guard.ts";
import { planLocal } from "./local_names.ts";
import { versionKey, writeRefs } from "./versions.ts";
import { copyTransforms, encodeCopy, openCopy } from "./stored_copy.ts";
import {
  canLink,
  linkBatched,
  moveBatched,
  moveObject,
  putBatched,
  syncBatch,
} from "../../repository/capabilities.ts";
import {
  ContentIndex,
  contentKey,
  holdsFile,
  readVersionHints,
  type StoredFile,
  type VersionHint,
  writeVersionHints,
} from "./dedup.ts";

/** The source client loads with the first mirror run, not with every cairn start. */
async function openSource(client: S3ClientConfig): Promise<S3Source> {
  const { S3Source } = await import(unseen("./source.ts")) as typeof import("./source.ts");
  return new S3Source(client);
}

type S3ClientConfig = Extract<ClientConfig, { kind: "s3" }>;

/** An object a run could not store, and why (named in the job result and the listing). */
export interface FailedObject {
  key: string;
  reason: string;
}

/** Renames at once when objects move to their current names (each waits on the disk). */
const MOVE_CONCURRENCY = 8;

/** The stored file a state entry names: its key, and the stored bytes' size and sha256. */
function storedFileOf(e: MirrorEntry): StoredFile {
  return { key: e.stored_key, size: e.stored_size ?? e.size, sha256: e.stored_sha256 ?? e.sha256 };
}

/** At most this many failed objects are named in the job result (all are in the listing). */
const FAILED_IN_RESULT = 100;

/**
 * OS errors about one object's name or place, not about the repository as a whole:
 * ENOTDIR, EEXIST, EISDIR, ENAMETOOLONG, ENOTEMPTY (Linux errno 20, 17, 21, 36, 39).
 */
const NAME_ERROR = /os error (17|20|21|36|39)\b|ENOTDIR|EEXIST|EISDIR|ENAMETOOLONG|ENOTEMPTY/;

/**
 * Why copying this one object failed, when the failure is the object's own (its key
 * cannot be stored, or cannot be requested from the source); null when the failure
 * is the run's (disk full, credentials, an unreachable source), which fails the run.
 */
export function objectFailure(error: unknown): string | null {
  const causes: unknown[] = [];
  for (let e: unknown = error; e && causes.length < 5; e = (e as { cause?: unknown }).cause) {
    causes.push(e);
  }
  for (const e of causes) {
    const { name, message, code } = e as { name?: string; message?: string; code?: string };
    if (code === "INVALID_KEY") return String(message);
    // The SDK names the S3 error code in `name`, minio in `code` (name "S3Error").
    const s3Code = name === "S3Error" ? code : name;
    if (s3Code && /^(InvalidObjectName|KeyTooLong|InvalidURI)$/.test(s3Code)) {
      return `the source refuses the key (${s3Code}): ${message}`;
    }
  }
  for (const e of causes) {
    const text = `${(e as Error)?.message ?? ""} ${(e as { code?: string })?.code ?? ""}`;
    if (NAME_ERROR.test(text)) return `the repository cannot hold it: ${(e as Error).message}`;
  }
  return null;
}

/**
 * The current name of every object in the index, for an index written under an
 * older naming (cairn 0.1 stored `photos/1.jpg` at mirrors/<client>/photos/1.jpg,
 * where a later `photos` could not go). Objects are moved, not copied again: a
 * rename on a disk. A move whose target is still another object's old name waits
 * for that one; what cannot be moved is dropped from the index (the run copies it
 * again) and its old name returned, to be removed once the run no longer needs it.
 */
async function renameToCurrentNames(
  repository: EngineContext<S3ClientConfig>["repository"],
  state: Map<string, MirrorEntry>,
  nameOf: (key: string) => string | null,
): Promise<{ moved: number; stale: MirrorEntry[] }> {
  let pending = [...state.values()].filter((e) => e.stored_key !== nameOf(e.key));
  const stale: MirrorEntry[] = [];
  let moved = 0;
  while (pending.length) {
    const held = new Set(pending.map((e) => e.stored_key));
    const waiting: MirrorEntry[] = [];
    // A move whose target another pending move has yet to free waits for the next
    // pass; one freed during this pass is safe to take (its move has returned).
    await forEachConcurrently(pending, MOVE_CONCURRENCY, async (entry) => {
      const name = nameOf(entry.key);
      if (name === null) {
        state.delete(entry.key);
        stale.push(entry);
        return;
      }
      if (held.has(name)) return void waiting.push(entry);
      try {
        await moveBatched(repository, entry.stored_key, name);
        state.set(entry.key, { ...entry, stored_key: name });
        moved++;
      } catch (error) {
        // Moved by a run that died before it saved the index: already in place.
        const there = await repository.stat(name).catch(() => null);
        if (there && there.size === (entry.stored_size ?? entry.size)) {
          state.set(entry.key, { ...entry, stored_key: name });
          moved++;
        } else {
          logger.warn("Could not move a mirrored object to its current name; copying it again", {
            key: entry.key,
            from: entry.stored_key,
            error: String(error),
          });
          state.delete(entry.key);
          stale.push(entry);
        }
      }
      held.delete(entry.stored_key);
    });
    if (waiting.length === pending.length) {
      // A cycle of names (not made by any naming cairn has used): copy them again.
      for (const entry of waiting) {
        state.delete(entry.key);
        stale.push(entry);
      }
      break;
    }
    pending = waiting;
  }
  return { moved, stale };
}

/**
 * Where the bytes a run listed may be, in the order to try them: the copy under the
 * name the listing recorded, the copy under the object's current name (a listing
 * written before the names changed), and the kept version with the listed sha256
 * (versions.ts). `live` (the mirror's running index) says whether the current copy
 * still holds the listed bytes, which puts it first; else the kept version is first.
 * The caller checks size and sha256, and moves on to the next on a mismatch.
 */
function copiesOf(
  repository: EngineContext<S3ClientConfig>["repository"],
  clientName: string,
  o: MirrorEntry,
  live: Map<string, MirrorEntry> | null,
): string[] {
  const names = [o.stored_key];
  try {
    const current = storedObjectKey(repository.kind, clientName, o.key);
    if (current !== o.stored_key) names.push(current);
  } catch { /* a key with no current name: only the recorded one */ }
  const version = versionKey(repository.kind, clientName, o.sha256);
  const now = live?.get(o.key);
  return now && now.sha256 === o.sha256 ? [...names, version] : [version, ...names];
}

/** The running index for copiesOf's hint, or null when it cannot be read (the hint only orders). */
function liveIndex(
  repository: EngineContext<S3ClientConfig>["repository"],
  clientName: string,
): Promise<Map<string, MirrorEntry> | null> {
  return readState(repository, clientName).catch(() => null);
}

const COPY_ATTEMPTS = 3;
/** Copies slower than this are followed by a HEAD to catch a change made during the copy. */
const SLOW_COPY_MS = 100;
const STATE_EVERY_COPIES = 500;
const STATE_EVERY_MS = 15_000;

/**
 * The objects under every configured prefix, each key once (prefixes may overlap),
 * recorded into `seen` as they are listed.
 */
async function* listSource(
  source: S3Source,
  prefixes: string[],
  seen: Map<string, SourceObject>,
  signal: AbortSignal,
): AsyncGenerator<SourceObject> {
  for (const prefix of prefixes.length ? prefixes : [""]) {
    for await (const o of source.list(prefix)) {
      signal.throwIfAborted();
      if (seen.has(o.key)) continue;
      seen.set(o.key, o);
      yield o;
    }
  }
}

/** The age identities this host decrypts mirrored copies with (none on a write-only host). */
function identities(ctx: EngineContext<S3ClientConfig>): string[] {
  return ctx.keys?.identities ?? [];
}

/** A copy's CHECKSUM_MISMATCH in the words of a restore or verify result. */
function mismatchReason(key: string, error: Error): string {
  return `${key}: ${
    /is damaged: sha256/.test(error.message) ? "sha256 differs from the listing" : error.message
  }`;
}

/**
 * Fails up front (IDENTITY_MISSING, naming where identities are looked for) when a
 * run lists encrypted copies and this host has no identity that opens them: before
 * anything is written to a target. A run whose listing is encrypted already failed
 * there (runtime/execute.ts); this is for a plain listing naming encrypted copies.
 */
async function requireIdentityForCopies(
  ctx: EngineContext<S3ClientConfig>,
  objects: MirrorEntry[],
): Promise<void> {
  // Each set of recipients on its own: copies made before a key rotation are for the
  // old key, and an identity for the new one alone must not let a restore start that
  // would stop at the first old copy, with part of the target already written.
  const sets = new Map<string, string[]>();
  for (const o of objects) {
    for (const t of o.transforms ?? []) {
      if (t.name === "age") sets.set(JSON.stringify([...t.recipients].sort()), t.recipients);
    }
  }
  const keys = ctx.keys ?? { recipients: [], identities: [], identityFile: null };
  for (const recorded of sets.values()) await requireIdentityFor(recorded, keys);
}

/** VERIFY_FAILED naming the objects a restore did not write, and why. */
function notRestored(
  restored: number,
  mismatched: Array<{ key: string; reason: string }>,
): CairnError {
  return new CairnError(
    "VERIFY_FAILED",
    `Restored ${restored} objects; ${mismatched.length} no longer match the listing and were not restored: ` +
      mismatched.slice(0, 20).map((m) => `${m.key} (${m.reason})`).join("; ") +
      (mismatched.length > 20 ? "; ..." : ""),
    { details: mismatched },
  );
}

/**
 * Writes every object through `write`, from the first of its copies (copiesOf) whose
 * bytes match the listing: `write` gets a stream that errors (CHECKSUM_MISMATCH) at
 * its end when they do not, and must then leave nothing behind; the next copy is
 * tried. Objects no copy holds are returned with the reasons.
 */
async function restoreEach(
  ctx: EngineContext<S3ClientConfig>,
  wanted: MirrorEntry[],
  write: (o: MirrorEntry, checked: ReadableStream<Uint8Array>) => Promise<void>,
): Promise<
  { restored: number; bytes: number; mismatched: Array<{ key: string; reason: string }> }
> {
  const { repository, client, signal } = ctx;
  const total = wanted.reduce((n, o) => n + o.size, 0);
  const mismatched: Array<{ key: string; reason: string }> = [];
  let restored = 0, bytes = 0;
  const live = await liveIndex(repository, ctx.clientName);
  await forEachConcurrently(wanted, client.concurrency, async (o: MirrorEntry) => {
    const reasons: string[] = [];
    for (const key of copiesOf(repository, ctx.clientName, o, live)) {
      const info = await repository.stat(key);
      if (!info) continue;
      const opened = await openCopy(() => repository.get(key), key, info.size, o, identities(ctx));
      if ("reason" in opened) {
        reasons.push(opened.reason);
        continue;
      }
      try {
        await write(o, opened.stream);
      } catch (error) {
        if (!isCairnError(error, "CHECKSUM_MISMATCH")) throw error;
        reasons.push(mismatchReason(key, error));
        continue;
      }
      restored++;
      bytes += o.size;
      ctx.progress({ bytes_done: bytes, bytes_total: total, phase: "restoring objects" });
      return;
    }
    mismatched.push({
      key: o.key,
      reason: reasons.length
        ? `no copy or kept version holds the listed bytes (${reasons.join("; ")})`
        : "missing from the mirror (no copy, no kept version)",
    });
  }, signal);
  return { restored, bytes, mismatched };
}

/**
 * A run restored into a local directory (an absolute path), each key at the relative
 * path of the same text (local_names.ts). Each file is written under a temporary
 * name beside its place and renamed only once its sha256 matched the listing, so a
 * damaged copy never replaces a file. A non-empty directory needs replace. Keys with
 * no file name there are named in the error, after every other object is written.
 */
async function restoreToDirectory(
  ctx: EngineContext<S3ClientConfig>,
  target: string,
  replace: boolean,
  objects: MirrorEntry[],
): Promise<Record<string, unknown>> {
  const root = resolve(target);
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) {
      throw new CairnError("VALIDATION_FAILED", `Restore target ${root} is not a directory`);
    }
    for await (const _ of Deno.readDir(root)) {
      if (!replace) {
        throw new CairnError(
          "TARGET_NOT_EMPTY",
          `Restore target ${root} is not empty: pass --yes on the command line or "replace": true to overwrite files`,
        );
      }
      break;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(root, { recursive: true });
  }
  const wanted = objects.filter((o) => !o.source_deleted);
  const plan = planLocal(wanted);
  for (const dir of plan.dirs) await Deno.mkdir(join(root, dir), { recursive: true });
  const byKey = new Map(plan.files.map((f) => [f.key, f.path]));
  const realRoot = await Deno.realPath(root);
  const { restored, bytes, mismatched } = await restoreEach(
    ctx,
    wanted.filter((o) => byKey.has(o.key)),
    async (o, checked) => {
      const path = join(root, byKey.get(o.key)!);
      await Deno.mkdir(dirname(path), { recursive: true });
      // A symlinked directory already in a replaced target must not lead a file out of it.
      const parent = await Deno.realPath(dirname(path));
      if (parent !== realRoot && !parent.startsWith(realRoot + "/")) {
        throw new CairnError(
          "VALIDATION_FAILED",
          `Restore target ${root}: ${
            dirname(path)
          } leads outside it (a symbolic link); remove it or restore into an empty directory`,
        );
      }
      // Any name can be a key of the run (q beside q.cairn-part-7), so the temporary name
      // is unpredictable and made exclusively: never another object's file, nor renamed
      // over by one.
      const part = `${path}.cairn-part-${ctx.jobId}-${crypto.randomUUID()}`;
      try {
        const file = await Deno.open(part, { write: true, createNew: true });
        await checked.pipeTo(file.writable);
        await Deno.rename(part, path);
      } catch (error) {
        await Deno.remove(part).catch(() => {});
        throw error;
      }
    },
  );
  if (mismatched.length) throw notRestored(restored, mismatched);
  if (plan.unplaceable.length) {
    throw new CairnError(
      "VERIFY_FAILED",
      `Restored ${restored} objects into ${root}; ${plan.unplaceable.length} have no file name in a directory and were not restored (restore the run into a bucket for those): ` +
        plan.unplaceable.slice(0, 20).map((u) => `${JSON.stringify(u.key)} (${u.reason})`)
          .join("; ") +
        (plan.unplaceable.length > 20 ? "; ..." : ""),
      { details: plan.unplaceable },
    );
  }
  return {
    target: root,
    objects_restored: restored,
    directories_made: plan.dirs.length,
    bytes_restored: bytes,
  };
}

/**
 * MinIO/S3 prefixes mirrored incrementally into the repository under
 * mirrors/<client>/: an object is copied when it is new or its size or etag differs
 * from the mirror's index; unchanged objects are not read at all. Each run's
 * artifact is its listing (mirror.json).
 */
export const s3MirrorEngine: Engine<S3ClientConfig> = {
  kind: "s3",
  extension: "mirror.json",

  async backup(ctx: EngineContext<S3ClientConfig>) {
    const { client, repository, clientName, signal } = ctx;
    const source = await openSource(client);
    // Every copy this run makes is stored this way (stored_copy.ts).
    const transforms = copyTransforms(ctx.keys?.recipients ?? []);
    const encrypting = isEncrypted(transforms);
    // Where the repository links (fs), content already stored the same way is linked
    // to, not stored again (dedup.ts).
    const linking = canLink(repository);
    const contents = new ContentIndex();
    let hints = new Map<string, VersionHint>();
    let hintsChanged = false;
    ctx.progress({ bytes_done: 0, phase: "listing" });
    // The index is read while the first listing page is on its way: that page checks
    // the bucket and the credentials as well as a HEAD would.
    const index = readState(repository, clientName);
    index.catch(() => {}); // a failed listing is the error reported
    const current = new Map<string, SourceObject>();
    const counters = {
      objects_total: 0,
      objects_copied: 0,
      objects_unchanged: 0,
      objects_removed: 0,
      objects_failed: 0,
      objects_moved: 0,
      bytes_copied: 0,
      /**
       * Bytes this run's copies newly occupy in the repository, as stored (an
       * encrypted copy is larger than the object). A copy linked to a stored file
       * holding its bytes adds none, nor does moving a displaced copy into the version
       * store. Never negative.
       */
      bytes_stored_new: 0,
      /**
       * Bytes not stored twice (as stored): copies linked to a stored file that held
       * their bytes the same way (fs repositories), and displaced copies whose bytes
       * the version store already held.
       */
      bytes_deduplicated: 0,
      /** Copies linked to a stored file holding their bytes instead of stored again. */
      objects_deduplicated: 0,
      /** Displaced copies moved into the version store. */
      versions_kept: 0,
      /** Objects the previous run saw that this run's listing no longer holds. */
      objects_deleted_in_source: 0,
    };
    const failed: FailedObject[] = [];
    const nameOf = (key: string): string | null => {
      try {
        return storedObjectKey(repository.kind, clientName, key);
      } catch {
        return null;
      }
    };
    // Objects under an old name that could not be moved: copied again by this run.
    let stale: MirrorEntry[] = [];
    /** Keys the previous run saw in the source: the base of the mass-delete guard. */
    let previous = new Set<string>();
    const loadState = async () => {
      const loaded = await index;
      previous = new Set([...loaded.values()].filter((e) => !e.source_deleted).map((e) => e.key));
      const renamed = await renameToCurrentNames(repository, loaded, nameOf);
      counters.objects_moved = renamed.moved;
      stale = renamed.stale;
      if (renamed.moved || stale.length) {
        // Saved at once: the index names where the objects are now.
        await syncBatch(repository);
        await writeState(repository, clientName, loaded);
      }
      if (linking) {
        hints = await readVersionHints(repository, clientName);
        for (const [sha, h] of hints) {
          contents.add(contentKey(sha, h.transforms), {
            key: versionKey(repository.kind, clientName, sha),
            size: h.stored_size,
            sha256: h.stored_sha256,
          });
        }
        for (const e of loaded.values()) {
          contents.add(contentKey(e.sha256, e.transforms ?? []), storedFileOf(e));
        }
      }
      return loaded;
    };
    // Copies start with the first listing page: on a first mirror, listing a large
    // prefix takes as long as copying its first few hundred objects.
    const listing = { done: false, bytesToCopy: 0 };
    let state!: Map<string, MirrorEntry>;
    async function* toCopy(): AsyncGenerator<SourceObject> {
      for await (const obj of listSource(source, client.prefixes, current, signal)) {
        state ??= await loadState();
        const prev = state.get(obj.key);
        // A copy stored the other way (encryption switched on or off since) is made
        // again, so the newest state is all encrypted or all plain. Recipients that
        // changed do not count: older copies open with the older identities.
        if (
          prev && !prev.source_deleted && prev.size === obj.size && prev.etag === obj.etag &&
          isEncrypted(prev.transforms ?? []) === encrypting
        ) {
          counters.objects_unchanged++;
        } else {
          listing.bytesToCopy += obj.size;
          yield obj;
        }
      }
      state ??= await loadState();
      listing.done = true;
    }
    let lastSave = Date.now(), sinceSave = 0, dirty = false;
    let saveFailure: unknown = null;
    const saveState = async (force = false) => {
      // Once a sync failed, which copies are durable is unknown (a failed fsync is
      // not reported twice): the run fails and its state is never written.
      if (saveFailure !== null) throw saveFailure;
      if (force && hintsChanged) {
        hintsChanged = false;
        // Only hints (checked before any link): a run that cannot write them goes on.
        await writeVersionHints(repository, clientName, hints).catch((e) =>
          logger.warn("Could not save the mirror's version hints", { error: String(e) })
        );
      }
      if (!dirty && sinceSave === 0) return; // an unchanged run rewrites nothing
      if (force || sinceSave >= STATE_EVERY_COPIES || Date.now() - lastSave > STATE_EVERY_MS) {
        sinceSave = 0;
        lastSave = Date.now();
        try {
          // The state may only name copies whose bytes and directory entries are durable.
          await syncBatch(repository);
          await writeState(repository, clientName, state);
        } catch (error) {
          saveFailure ??= error;
          throw error;
        }
      }
    };

    /**
     * Keeps the copy `entry` names as the version of its sha256 before a change or a
     * removal displaces it, so every run that lists those bytes still restores them.
     * A move, not a copy: a rename on a disk, and synced before the caller replaces
     * the copy (a crash must never leave the old bytes nowhere). When the version
     * store already holds those bytes, nothing is moved and true is returned: the
     * caller may drop the copy (dedup).
     */
    const keeping = new Map<string, Promise<unknown>>();
    const keepVersion = (entry: MirrorEntry, replaced = false): Promise<boolean> => {
      // One at a time per sha256: two displaced copies of the same bytes in one run
      // must find the first one kept, not both move.
      const next = (keeping.get(entry.sha256) ?? Promise.resolve()).then(() =>
        keepOnce(entry, replaced)
      );
      keeping.set(entry.sha256, next.catch(() => {}));
      return next;
    };
    const keepOnce = async (entry: MirrorEntry, replaced: boolean): Promise<boolean> => {
      const version = versionKey(repository.kind, clientName, entry.sha256);
      if (await repository.stat(version)) {
        // A copy about to be replaced, whose bytes are already kept: stored once.
        if (replaced && await repository.stat(entry.stored_key)) {
          counters.bytes_deduplicated += entry.stored_size ?? entry.size;
        }
        return true;
      }
      try {
        await moveObject(repository, entry.stored_key, version);
        counters.versions_kept++;
        if (linking) noteVersion(entry, version);
      } catch (error) {
        // Displaced by a run that died before its copy replaced it: nothing left to keep.
        if (!isCairnError(error, "BACKUP_NOT_FOUND")) throw error;
      }
      return false;
    };

    /**
     * Notes how the version just kept of `entry` is stored, for a copy of the same
     * content later in this run or a later one (X, then Y, then X again). Its file says
     * so itself when plain; an age file does not name its recipients, hence the hints.
     */
    const noteVersion = (entry: MirrorEntry, version: string) => {
      const file = { ...storedFileOf(entry), key: version };
      contents.add(contentKey(entry.sha256, entry.transforms ?? []), file);
      if (entry.transforms?.length) {
        hints.set(entry.sha256, {
          transforms: entry.transforms,
          stored_size: file.size,
          stored_sha256: file.sha256,
        });
        hintsChanged = true;
      } else if (hints.delete(entry.sha256)) hintsChanged = true;
    };

    /**
     * Replaces the fresh copy at `stored` by a link to a stored file holding the same
     * content the same way, when there is one whose bytes check out (a file noted
     * earlier may have been replaced since; the link pins the file it checks). One at
     * a time per content: ten keys of the same bytes copied at once link to the first.
     * Returns the file now at `stored` when linked, else null (the fresh copy stays
     * and is noted for the next).
     */
    const linkQueue = new Map<string, Promise<unknown>>();
    const dedupe = (sha256: string, fresh: StoredFile): Promise<StoredFile | null> => {
      const content = contentKey(sha256, transforms);
      const next = (linkQueue.get(content) ?? Promise.resolve()).then(() =>
        dedupeOnce(content, sha256, fresh)
      );
      const tail = next.catch(() => {});
      linkQueue.set(content, tail);
      // Forgotten once settled, unless another copy of the content queued behind it.
      tail.then(() => linkQueue.get(content) === tail && linkQueue.delete(content));
      return next;
    };
    const dedupeOnce = async (
      content: string,
      sha256: string,
      fresh: StoredFile,
    ): Promise<StoredFile | null> => {
      const candidates = contents.candidates(content, fresh.key);
      if (!transforms.length) {
        // A plain kept version is its own record: its name is the sha256 of its bytes.
        const version = versionKey(repository.kind, clientName, sha256);
        if (!candidates.some((c) => c.key === version)) {
          candidates.push({ key: version, size: fresh.size, sha256 });
        }
      }
      for (const c of candidates) {
        if (!transforms.length && c.size !== fresh.size) continue;
        if (await linkBatched(repository, c.key, fresh.key, (body) => holdsFile(body, c))) {
          const linked = { ...c, key: fresh.key };
          contents.add(content, linked);
          contents.add(content, c);
          return linked;
        }
        contents.drop(content, c.key);
      }
      contents.add(content, fresh);
      return null;
    };

    /**
     * One object that cannot be stored (its key, or what the source says of it) is
     * named in the result and the listing, and never stops the others: the run still
     * completes, so every other object has a restorable listing, and the next run
     * tries it again.
     */
    const copyOne = async (listed: SourceObject) => {
      try {
        await copyObject(listed);
      } catch (error) {
        const reason = objectFailure(error);
        if (reason === null || signal.aborted) throw error;
        failed.push({ key: listed.key, reason });
        counters.objects_failed++;
        logger.warn("Could not mirror an object; the others go on", { key: listed.key, reason });
      }
    };

    const copyObject = async (listed: SourceObject) => {
      const stored = storedObjectKey(repository.kind, clientName, listed.key);
      const displaced = state.get(listed.key);
      if (displaced) await keepVersion(displaced, true);
      for (let attempt = 1;; attempt++) {
        const started = Date.now();
        const got = await source.get(listed.key, signal);
        const encoded = await encodeCopy(got.body, transforms);
        const put = await putBatched(repository, stored, encoded.stored, { signal });
        const plain = encoded.plain?.() ?? put;
        if (got.size !== null && plain.size !== got.size) {
          if (attempt < COPY_ATTEMPTS) continue;
          throw new CairnError(
            "SOURCE_UNAVAILABLE",
            `${listed.key}: read ${plain.size} bytes, the source said ${got.size}`,
          );
        }
        // S3 serves one version whole per GET, and its ETag comes with it: a change
        // since the listing is seen for free. A change *during* a copy can only slip
        // past a longer one, so those are checked again with a HEAD.
        const after = Date.now() - started > SLOW_COPY_MS ? await source.head(listed.key) : null;
        if (after && after.etag !== got.etag) {
          if (attempt < COPY_ATTEMPTS) {
            logger.info("Object changed during its copy; copying again", {
              key: listed.key,
              attempt,
            });
            continue;
          }
          throw new CairnError(
            "SOURCE_UNAVAILABLE",
            `${listed.key} kept changing while it was copied (${COPY_ATTEMPTS} attempts)`,
          );
        }
        // An empty object saves nothing by a link (and would spend one of the file's).
        const fresh = { key: stored, size: put.size, sha256: put.sha256 };
        const linked = linking && plain.size > 0 ? await dedupe(plain.sha256, fresh) : null;
        const file = linked ?? fresh;
        state.set(listed.key, {
          key: listed.key,
          stored_key: stored,
          size: plain.size,
          etag: got.etag,
          sha256: plain.sha256,
          last_modified: listed.last_modified,
          ...(transforms.length
            ? { transforms, stored_size: file.size, stored_sha256: file.sha256 }
            : {}),
        });
        counters.objects_copied++;
        counters.bytes_copied += plain.size;
        if (linked) {
          counters.objects_deduplicated++;
          counters.bytes_deduplicated += put.size;
        } else counters.bytes_stored_new += put.size;
        sinceSave++;
        ctx.progress({
          bytes_done: counters.bytes_copied,
          // The total is known once the listing is.
          bytes_total: listing.done ? listing.bytesToCopy : null,
          phase: listing.done ? "copying" : "listing and copying",
        });
        await saveState();
        return;
      }
    };

    try {
      await forEachConcurrently(toCopy(), client.concurrency, copyOne, signal);
    } finally {
      // Whatever happened, record what was copied: the next run picks up from here.
      await saveState(true).catch((e) =>
        logger.warn("Could not save the mirror state", { error: String(e) })
      );
    }

    const guard = checkMassDelete(previous, current, client, clientName, ctx.force === true);
    counters.objects_deleted_in_source = guard.deleted;

    const storedNames = new Set([...state.values()].map((e) => e.stored_key));
    // Old copies of objects copied again under their current name: kept as versions
    // (earlier runs list them), never left twice. One whose copy failed keeps its old
    // bytes where they are (still its last copy).
    for (const old of stale) {
      if (state.has(old.key) && !storedNames.has(old.stored_key)) {
        if (await keepVersion(old)) await repository.remove(old.stored_key);
      }
    }
    for (const [key, entry] of state) {
      if (current.has(key)) {
        if (entry.source_deleted) {
          state.set(key, { ...entry, source_deleted: undefined });
          dirty = true;
        }
      } else if (client.remove) {
        // Removed from the newest state, still restorable through the runs that list it.
        if (await keepVersion(entry)) await repository.remove(entry.stored_key);
        storedNames.delete(entry.stored_key);
        state.delete(key);
        counters.objects_removed++;
        dirty = true;
      } else if (!entry.source_deleted) {
        state.set(key, { ...entry, source_deleted: true });
        dirty = true;
      }
    }
    await saveState(true);

    const objects = [...state.values()].sort((
      a,
      b,
    ) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    counters.objects_total = objects.filter((o) => !o.source_deleted).length;
    const bytesTotal = objects.reduce((n, o) => n + (o.source_deleted ? 0 : o.size), 0);
    // Before the listing is stored: version collection on a host with no identity
    // reads the run's references from here, never from an encrypted listing.
    if (ctx.artifactKey) await writeRefs(repository, ctx.artifactKey, objects.map((o) => o.sha256));
    const body = listingStream(
      {
        format_version: 1,
        client: clientName,
        bucket: client.bucket,
        prefixes: client.prefixes,
        created_at: new Date().toISOString(),
        // Named "refused" since listing format 1: the objects this run could not store.
        refused: failed,
      },
      objects,
    );
    const facts: BackupFacts = {
      tool_versions: { cairn: VERSION },
      facts: {
        bucket: client.bucket,
        endpoint: client.endpoint,
        prefixes: client.prefixes,
        objects: counters.objects_total,
        bytes: bytesTotal,
        objects_source_deleted: objects.length - counters.objects_total,
        objects_failed: failed.length,
        failed,
      },
      counters: { ...counters, failed: failed.slice(0, FAILED_IN_RESULT) },
    };
    return { body, facts: Promise.resolve(facts) };
  },

  async restore(ctx: EngineContext<S3ClientConfig>, request: RestoreRequest) {
    const { client, signal } = ctx;
    if (request.target?.startsWith("/")) {
      const listing = await parseListing(await request.open(), request.manifest.key);
      await requireIdentityForCopies(ctx, listing.objects);
      return await restoreToDirectory(ctx, request.target, request.replace, listing.objects);
    }
    const source = await openSource(client);
    const target = request.target
      ? parseS3Target(request.target)
      : { bucket: client.bucket, prefix: "" };
    if (!target) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Invalid restore target ${
          JSON.stringify(request.target)
        }: expected s3://BUCKET/PREFIX or an absolute directory path`,
      );
    }
    await source.checkBucket(target.bucket);
    const listing = await parseListing(await request.open(), request.manifest.key);
    await requireIdentityForCopies(ctx, listing.objects);
    for await (const _ of source.list(target.prefix, target.bucket)) {
      if (!request.replace) {
        throw new CairnError(
          "TARGET_NOT_EMPTY",
          `Restore target s3://${target.bucket}/${target.prefix} is not empty: pass --yes on the command line or "replace": true to overwrite objects`,
        );
      }
      break;
    }
    const wanted = listing.objects.filter((o) => !o.source_deleted);
    // Checked as it uploads, so each object is read once: the last bytes are held back
    // until the sha256 matches the listing, and a damaged copy never completes an
    // upload (nor replaces the object already at the target).
    const { restored, bytes, mismatched } = await restoreEach(
      ctx,
      wanted,
      (o, checked) =>
        source.put(target.bucket, target.prefix + o.key, checked, { size: o.size, signal }),
    );
    if (mismatched.length) throw notRestored(restored, mismatched);
    return {
      target: `s3://${target.bucket}/${target.prefix}`,
      objects_restored: restored,
      bytes_restored: bytes,
    };
  },

  async verify(ctx: EngineContext<S3ClientConfig>, request: VerifyRequest) {
    const { repository, client, signal } = ctx;
    const listing = await parseListing(await request.open(), request.manifest.key);
    await requireIdentityForCopies(ctx, listing.objects);
    const problems: Array<{ key: string; reason: string }> = [];
    let checked = 0, bytes = 0;
    const live = await liveIndex(repository, ctx.clientName);
    await forEachConcurrently(listing.objects, client.concurrency, async (o: MirrorEntry) => {
      const reasons: string[] = [];
      for (const key of copiesOf(repository, ctx.clientName, o, live)) {
        const info = await repository.stat(key);
        if (!info) continue;
        const opened = await openCopy(
          () => repository.get(key),
          key,
          info.size,
          o,
          identities(ctx),
        );
        if ("reason" in opened) {
          reasons.push(opened.reason);
          continue;
        }
        try {
          for await (const _ of opened.stream) signal.throwIfAborted();
        } catch (error) {
          if (!isCairnError(error, "CHECKSUM_MISMATCH")) throw error;
          reasons.push(mismatchReason(key, error));
          continue;
        }
        checked++;
        bytes += o.size;
        ctx.progress({ bytes_done: bytes, phase: "checking objects" });
        return;
      }
      problems.push({
        key: o.key,
        reason: reasons.length ? reasons.join("; ") : "missing from the mirror",
      });
    }, signal);
    if (problems.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `${problems.length} of ${listing.objects.length} mirrored objects do not match the listing: ` +
          problems.slice(0, 20).map((p) => `${p.key} (${p.reason})`).join("; "),
        { details: problems },
      );
    }
    return { objects_checked: checked, bytes_checked: bytes };
  },
};

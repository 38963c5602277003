import { createHash } from "node:crypto";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { unseen } from "../../lazy.ts";
import { logger } from "../../log.ts";
import { verifyingStream } from "../../io/hashing.ts";
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
    if (name && /InvalidObjectName|KeyTooLong|InvalidURI/.test(name)) {
      return `the source refuses the key (${name}): ${message}`;
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
        await repository.move(entry.stored_key, name, { deferSync: true });
        state.set(entry.key, { ...entry, stored_key: name });
        moved++;
      } catch (error) {
        // Moved by a run that died before it saved the index: already in place.
        const there = await repository.stat(name).catch(() => null);
        if (there && there.size === entry.size) {
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
 * The copy of a listed object: the name its listing recorded, else its current name
 * (a listing written before the names changed). The caller checks size and sha256.
 */
async function findCopy(
  repository: EngineContext<S3ClientConfig>["repository"],
  clientName: string,
  o: MirrorEntry,
): Promise<{ key: string; size: number } | null> {
  const recorded = await repository.stat(o.stored_key);
  if (recorded?.size === o.size) return recorded;
  let current: string;
  try {
    current = storedObjectKey(repository.kind, clientName, o.key);
  } catch {
    return recorded;
  }
  if (current === o.stored_key) return recorded;
  const moved = await repository.stat(current);
  return moved?.size === o.size ? moved : recorded ?? moved;
}

const COPY_ATTEMPTS = 3;
/** Copies slower than this are followed by a HEAD to catch a change made during the copy. */
const SLOW_COPY_MS = 100;
const STATE_EVERY_COPIES = 500;
const STATE_EVERY_MS = 15_000;

async function sha256Of(
  stream: ReadableStream<Uint8Array>,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { sha256: hash.digest("hex"), size };
}

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
    const loadState = async () => {
      const loaded = await index;
      const renamed = await renameToCurrentNames(repository, loaded, nameOf);
      counters.objects_moved = renamed.moved;
      stale = renamed.stale;
      if (renamed.moved || stale.length) {
        // Saved at once: the index names where the objects are now.
        await repository.syncDeferred();
        await writeState(repository, clientName, loaded);
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
        if (prev && !prev.source_deleted && prev.size === obj.size && prev.etag === obj.etag) {
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
      if (!dirty && sinceSave === 0) return; // an unchanged run rewrites nothing
      if (force || sinceSave >= STATE_EVERY_COPIES || Date.now() - lastSave > STATE_EVERY_MS) {
        sinceSave = 0;
        lastSave = Date.now();
        try {
          // The state may only name copies whose bytes and directory entries are durable.
          await repository.syncDeferred();
          await writeState(repository, clientName, state);
        } catch (error) {
          saveFailure ??= error;
          throw error;
        }
      }
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
      for (let attempt = 1;; attempt++) {
        const started = Date.now();
        const got = await source.get(listed.key, signal);
        const put = await repository.put(stored, got.body, { signal, deferSync: true });
        if (got.size !== null && put.size !== got.size) {
          if (attempt < COPY_ATTEMPTS) continue;
          throw new CairnError(
            "SOURCE_UNAVAILABLE",
            `${listed.key}: read ${put.size} bytes, the source said ${got.size}`,
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
        state.set(listed.key, {
          key: listed.key,
          stored_key: stored,
          size: put.size,
          etag: got.etag,
          sha256: put.sha256,
          last_modified: listed.last_modified,
        });
        counters.objects_copied++;
        counters.bytes_copied += put.size;
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

    const storedNames = new Set([...state.values()].map((e) => e.stored_key));
    // Old copies of objects copied again under their current name: no bytes are left
    // twice. One whose copy failed keeps its old bytes (still its last copy).
    for (const old of stale) {
      if (state.has(old.key) && !storedNames.has(old.stored_key)) {
        await repository.remove(old.stored_key);
      }
    }
    for (const [key, entry] of state) {
      if (current.has(key)) {
        if (entry.source_deleted) {
          state.set(key, { ...entry, source_deleted: undefined });
          dirty = true;
        }
      } else if (client.remove) {
        await repository.remove(entry.stored_key);
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
    const { client, repository, signal } = ctx;
    const source = await openSource(client);
    const target = request.target
      ? parseS3Target(request.target)
      : { bucket: client.bucket, prefix: "" };
    if (!target) {
      throw new CairnError(
        "VALIDATION_FAILED",
        `Invalid restore target ${JSON.stringify(request.target)}: expected s3://BUCKET/PREFIX`,
      );
    }
    await source.checkBucket(target.bucket);
    const listing = await parseListing(await request.open(), request.manifest.key);
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
    const total = wanted.reduce((n, o) => n + o.size, 0);
    const mismatched: Array<{ key: string; reason: string }> = [];
    let restored = 0, bytes = 0;
    await forEachConcurrently(wanted, client.concurrency, async (o: MirrorEntry) => {
      const info = await findCopy(repository, ctx.clientName, o);
      if (!info || info.size !== o.size) {
        mismatched.push({
          key: o.key,
          reason: info ? `size ${info.size}, listing says ${o.size}` : "missing from the mirror",
        });
        return;
      }
      // Checked as it uploads, so each object is read once: the last bytes are held
      // back until the sha256 matches the listing, and a damaged copy never completes
      // an upload (nor replaces the object already at the target).
      const checked = (await repository.get(info.key)).pipeThrough(
        verifyingStream({ sha256: o.sha256, size: o.size, key: info.key }),
      );
      try {
        await source.put(target.bucket, target.prefix + o.key, checked, { size: o.size, signal });
      } catch (error) {
        if (!(error instanceof CairnError && error.code === "CHECKSUM_MISMATCH")) throw error;
        mismatched.push({
          key: o.key,
          reason: "sha256 differs from the listing (changed by a later run or damaged)",
        });
        return;
      }
      restored++;
      bytes += o.size;
      ctx.progress({ bytes_done: bytes, bytes_total: total, phase: "restoring objects" });
    }, signal);
    if (mismatched.length) {
      throw new CairnError(
        "VERIFY_FAILED",
        `Restored ${restored} objects; ${mismatched.length} no longer match the listing and were not restored: ` +
          mismatched.slice(0, 20).map((m) => `${m.key} (${m.reason})`).join("; ") +
          (mismatched.length > 20 ? "; ..." : ""),
        { details: mismatched },
      );
    }
    return {
      target: `s3://${target.bucket}/${target.prefix}`,
      objects_restored: restored,
      bytes_restored: bytes,
    };
  },

  async verify(ctx: EngineContext<S3ClientConfig>, request: VerifyRequest) {
    const { repository, client, signal } = ctx;
    const listing = await parseListing(await request.open(), request.manifest.key);
    const problems: Array<{ key: string; reason: string }> = [];
    let checked = 0, bytes = 0;
    await forEachConcurrently(listing.objects, client.concurrency, async (o: MirrorEntry) => {
      const info = await findCopy(repository, ctx.clientName, o);
      if (!info) return void problems.push({ key: o.key, reason: "missing from the mirror" });
      if (info.size !== o.size) {
        return void problems.push({
          key: o.key,
          reason: `size ${info.size}, listing says ${o.size}`,
        });
      }
      const check = await sha256Of(await repository.get(info.key));
      if (check.sha256 !== o.sha256) {
        return void problems.push({ key: o.key, reason: "sha256 differs from the listing" });
      }
      checked++;
      bytes += o.size;
      ctx.progress({ bytes_done: bytes, phase: "checking objects" });
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

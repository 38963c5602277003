import { explicitTargetDb, keyspaceOccupied, snapshotDbs } from "./target_db.ts";
import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { VERSION } from "../../version.ts";
import type {
  BackupFacts,
  Engine,
  EngineContext,
  RestoreRequest,
  VerifyRequest,
} from "../engine.ts";
import { withSideConsumer } from "../side_channel.ts";
import { fileChunks } from "../../io/file_chunks.ts";
import { inspectRdb, RdbError, RdbReader } from "./rdb_reader.ts";
import { replay } from "./replay.ts";
import { parseInfo, RedisConnection } from "./resp.ts";
import { takeSnapshot } from "./replication.ts";
import { describe, parseRedisUrl } from "./url.ts";
import { digestFacts, type DigestReading, readDigest } from "./digest.ts";
import { planRehearsal, type RehearsalPlan, rehearse } from "./rehearsal.ts";
import { rdbVersionFor } from "./rdb_version.ts";

export { rdbVersionFor };

/** Reads of a local artifact during a restore: large for keys, small for element batches. */
const READ_FAST = 1024 * 1024;
const READ_ELEMENTS = 64 * 1024;

type RedisClient = Extract<ClientConfig, { kind: "redis" }>;

function rdbFailure(error: unknown, key: string): unknown {
  return error instanceof RdbError
    ? new CairnError("VERIFY_FAILED", `${key}: ${error.message}`)
    : error;
}

/**
 * Redis over its own protocol: a replica-style SYNC for the snapshot, parsed while
 * it is stored (keys per db, CRC-64), and restore by replaying RESTORE payloads.
 */
export const redisEngine: Engine<RedisClient> = {
  kind: "redis",
  extension: "rdb",

  async backup(ctx: EngineContext<RedisClient>) {
    const target = parseRedisUrl(ctx.client.url, `url of client ${ctx.clientName}`);
    // The source's digest before the snapshot and after it was stored (digestFacts).
    const maxKeys = ctx.client.record_digest_max_keys;
    const before: DigestReading = await readDigest(target, maxKeys);
    ctx.progress({ bytes_done: 0, phase: "waiting for the snapshot" });
    const snapshot = await takeSnapshot(target, ctx.signal);
    // bytes_total: the RDB's length when the server gave it (`$<len>`); diskless, unknown.
    if (snapshot.length !== null) ctx.progress({ bytes_total: snapshot.length, phase: "storing" });
    const inspect = withSideConsumer((side) => inspectRdb(side, ctx.signal));
    const facts = inspect.result.then(async (rdb): Promise<BackupFacts> => {
      const keys = Object.values(rdb.keys).reduce((a, b) => a + b, 0);
      // After the snapshot the key count no longer decides: the same data is hashed again.
      const digest = digestFacts(
        before,
        "digest" in before ? await readDigest(target, Infinity).catch(() => null) : before,
      );
      return {
        tool_versions: { cairn: VERSION, redis: snapshot.redisVersion },
        facts: {
          redis_version: snapshot.redisVersion,
          rdb_version: rdb.rdb_version,
          snapshot_method: snapshot.method,
          keys_per_db: rdb.keys,
          expires_per_db: rdb.expires,
          functions: rdb.functions,
          checksum: rdb.checksum,
          aux: rdb.aux,
          ...digest,
        },
        counters: { keys, ...digest },
      };
    }, (error) => Promise.reject(rdbFailure(error, "the snapshot from " + describe(target))));
    facts.catch(() => {});
    return {
      body: snapshot.body.pipeThrough(inspect.transform),
      facts,
      cleanup: () => Promise.resolve(snapshot.close()),
    };
  },

  async restore(ctx: EngineContext<RedisClient>, request: RestoreRequest) {
    const target = parseRedisUrl(request.target ?? ctx.client.url, "restore target");
    const conn = await RedisConnection.open(target);
    const onAbort = () => conn.close();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const info = parseInfo(await conn.ok(["INFO"]));
      const targetRdb = rdbVersionFor(info.redis_version ?? "0");
      const snapshotRdb = Number(request.manifest.facts.rdb_version ?? 0);
      // Everything that can refuse the restore is checked before the first write.
      if (snapshotRdb > targetRdb) {
        throw new CairnError(
          "VALIDATION_FAILED",
          `${
            describe(target)
          } runs Redis ${info.redis_version} (RDB v${targetRdb}), older than the snapshot's RDB v${snapshotRdb}: ` +
            "restore into a Redis at least as new as the one backed up",
        );
      }
      // A `/db` target takes a snapshot of one database, into that database.
      const intoDb = explicitTargetDb(request.target ?? "");
      const dbs = snapshotDbs(request.manifest.facts.keys_per_db);
      if (intoDb !== null && dbs.length > 1) {
        throw new CairnError(
          "VALIDATION_FAILED",
          `The snapshot holds databases ${
            dbs.join(", ")
          }; a restore target with /${intoDb} takes one database: restore into the instance (no /db in the target URL)`,
        );
      }
      const occupied = keyspaceOccupied(info, intoDb);
      if (occupied && !request.replace && !request.flush) {
        throw new CairnError(
          "TARGET_NOT_EMPTY",
          `Restore target ${
            describe(target)
          } is not empty: pass "flush": true to empty it first, or --yes / "replace": true to overwrite keys`,
        );
      }
      ctx.progress({
        bytes_done: 0,
        bytes_total: request.manifest.size_bytes,
        phase: "checking the artifact",
      });
      // The whole artifact is proven against the manifest (stored and plain sha256)
      // before the first write, into a plain scratch file; the replay then reads that
      // file in MiB chunks (a third of the cost of a stream's 64 KiB ones, and more
      // entries whole in one chunk for the replay's fast path), except while a big
      // collection is replayed element by element: parsing a MiB of small fields
      // outlives several scavenges, and promoted chunks waited for a full GC (a
      // five-million-field hash took the RSS 100 MiB higher).
      const plain = await request.file();
      let readSize = READ_FAST;
      let reader: RdbReader;
      try {
        reader = new RdbReader(
          await fileChunks(await Deno.open(plain.path), { chunk: () => readSize }),
          { checksum: false },
        );
      } catch (error) {
        await plain.release();
        throw error;
      }
      if (request.flush) {
        if (intoDb === null) await conn.ok(["FLUSHALL"]);
        else {
          await conn.ok(["SELECT", String(intoDb)]);
          await conn.ok(["FLUSHDB"]);
          await conn.ok(["SELECT", "0"]);
        }
      }
      ctx.progress({ bytes_done: 0, bytes_total: request.manifest.size_bytes, phase: "restoring" });
      try {
        await reader.header();
        const result = await replay(conn, reader, {
          signal: ctx.signal,
          intoDb,
          onElementMode: (on) => readSize = on ? READ_ELEMENTS : READ_FAST,
        });
        return { target: describe(target), flushed: request.flush, ...result };
      } catch (error) {
        await reader.q.cancel(error).catch(() => {}); // closes the file on a failed replay
        throw rdbFailure(error, request.manifest.key);
      } finally {
        await plain.release();
      }
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      conn.close();
    }
  },

  async verify(ctx: EngineContext<RedisClient>, request: VerifyRequest) {
    // With a scratch server to load it into, the parse reads the same checked plain
    // copy that the server loads (one decode of the artifact instead of two).
    const plan = await planRehearsal(ctx.tools, request.manifest);
    const plain = "skipped" in plan ? null : await request.file();
    try {
      return await verifyRdb(ctx, request, plan, plain?.path ?? null);
    } finally {
      await plain?.release();
    }
  },
};

/** The parse and key counts, then the rehearsal (rehearsal.ts) of `plan`. */
async function verifyRdb(
  ctx: EngineContext<RedisClient>,
  request: VerifyRequest,
  plan: RehearsalPlan,
  plainPath: string | null,
): Promise<Record<string, unknown>> {
  let rdb;
  const file = plainPath === null ? null : await Deno.open(plainPath, { read: true });
  try {
    rdb = await inspectRdb(file?.readable ?? await request.open(), ctx.signal);
  } catch (error) {
    throw rdbFailure(error, request.manifest.key);
  } finally {
    try {
      file?.close(); // a parse that failed part way left it open
    } catch { /* closed at the stream's end */ }
  }
  const expected = (request.manifest.facts.keys_per_db ?? {}) as Record<string, number>;
  const problems: string[] = [];
  for (const db of new Set([...Object.keys(expected), ...Object.keys(rdb.keys)])) {
    if (expected[db] !== rdb.keys[db]) {
      problems.push(
        `${db}: ${rdb.keys[db] ?? 0} keys in the RDB, ${expected[db] ?? 0} in the manifest`,
      );
    }
  }
  if (rdb.checksum !== "ok") problems.push("the RDB carries no CRC-64 checksum");
  if (problems.length) {
    throw new CairnError(
      "VERIFY_FAILED",
      `Backup ${request.manifest.key} does not match its manifest: ${problems.join("; ")}`,
    );
  }
  return {
    rdb_version: rdb.rdb_version,
    checksum: rdb.checksum,
    keys_per_db: rdb.keys,
    functions: rdb.functions,
    ...await rehearse(ctx, request.manifest, plan, plainPath, rdb),
  };
}

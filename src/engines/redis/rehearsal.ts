import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import type { EngineContext, VerifyRequest } from "../engine.ts";
import { rdbVersionFor } from "./rdb_version.ts";
import {
  loadInScratchServer,
  redisServerVersion,
  type ScratchLoad,
  ScratchUnsupported,
} from "./scratch_server.ts";

type RedisClient = Extract<ClientConfig, { kind: "redis" }>;

const SETTING = "tools.redis_server";

/** What the verify result says about the scratch-server rehearsal. */
export type RehearsalResult =
  | {
    check: "scratch redis-server";
    scratch_server: {
      version: string;
      digest: string;
      /** "matches the source's at backup time", or why there was nothing to compare. */
      digest_check: string;
      keys_per_db: Record<string, number>;
    };
  }
  | { check: "parse and key counts"; scratch_server_skipped: string };

/**
 * Compares what a scratch server loaded with the manifest: its DEBUG DIGEST with
 * the source's recorded at backup time (when one was), its keys per database with
 * the manifest's. Empty databases count as absent on both sides. Returns the
 * problems, one sentence each (empty: it matches). Pure.
 */
export function compareLoad(
  loaded: ScratchLoad,
  facts: Record<string, unknown>,
): string[] {
  const problems: string[] = [];
  const recorded = typeof facts.digest === "string" ? facts.digest : null;
  if (recorded !== null && recorded !== loaded.digest) {
    problems.push(
      `its DEBUG DIGEST in a scratch redis-server ${loaded.version} is ${loaded.digest}; ` +
        `the source's when the snapshot was taken was ${recorded}`,
    );
  }
  const expected = (facts.keys_per_db ?? {}) as Record<string, number>;
  for (
    const db of [...new Set([...Object.keys(expected), ...Object.keys(loaded.keys_per_db)])].sort()
  ) {
    const want = expected[db] ?? 0, got = loaded.keys_per_db[db] ?? 0;
    if (want !== got) {
      problems.push(`${db}: ${got} keys in the scratch redis-server, ${want} in the manifest`);
    }
  }
  return problems;
}

/** Bytes of memory this host has available (MemAvailable), or null where Deno cannot tell. */
function availableMemory(): number | null {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return null;
  }
}

/**
 * Why an RDB of `plainBytes` is not loaded into a scratch server on a host with
 * `available` bytes of memory free, or null when it may be. A loaded dataset takes
 * more memory than its RDB (no per-key overhead, compressed and packed encodings in
 * the file), so twice the RDB is the least it can need; a host with less would swap
 * or have its out-of-memory killer pick a process. Unknown memory does not stop it.
 * Pure.
 */
export function memoryShortfall(plainBytes: number, available: number | null): string | null {
  if (available === null || plainBytes * 2 <= available) return null;
  const mib = (n: number) => `${Math.round(n / 1048576)} MiB`;
  return `the RDB is ${mib(plainBytes)}; loading it into a scratch redis-server needs at least ` +
    `${mib(plainBytes * 2)} of memory and this host has ${mib(available)} available`;
}

/**
 * The rehearsal of a Redis backup beyond the parse: when a redis-server is at hand
 * (`tools.redis_server`, else `redis-server` on PATH), the checked plain RDB is
 * loaded into a scratch one (scratch_server.ts) in a private directory under the
 * scratch root, removed afterwards whatever happens, and compared (compareLoad);
 * a difference is VERIFY_FAILED naming both values. Without a redis-server, or with
 * one too old for the RDB's version, or one that cannot load the RDB's module data,
 * or without the memory to load it (memoryShortfall), the parse and key counts
 * already done stand, and the result says why.
 */
export async function scratchRehearsal(
  ctx: EngineContext<RedisClient>,
  request: VerifyRequest,
  rdb: { rdb_version: number; keys: Record<string, number> },
): Promise<RehearsalResult> {
  const explicit = ctx.tools.redis_server !== undefined;
  const bin = ctx.tools.redis_server ?? "redis-server";
  const version = await redisServerVersion(bin, explicit, SETTING);
  if (version === null) {
    return {
      check: "parse and key counts",
      scratch_server_skipped:
        `redis-server is not on PATH (install it, or set ${SETTING}, to load the backup into a scratch server)`,
    };
  }
  const readable = rdbVersionFor(version);
  if (rdb.rdb_version > readable) {
    return {
      check: "parse and key counts",
      scratch_server_skipped: `${bin} ${version} reads RDB up to v${readable}; the backup is ` +
        `RDB v${rdb.rdb_version} (install a newer redis-server, or set ${SETTING})`,
    };
  }
  const plainBytes = request.manifest.plain_size_bytes ?? request.manifest.size_bytes;
  const tooBig = memoryShortfall(plainBytes, availableMemory());
  if (tooBig !== null) return { check: "parse and key counts", scratch_server_skipped: tooBig };
  const maxDb = Math.max(0, ...Object.keys(rdb.keys).map((d) => Number(d.slice(2))));
  const plain = await request.file();
  let loaded: ScratchLoad;
  try {
    const dir = plain.path.slice(0, plain.path.lastIndexOf("/"));
    const dbfilename = plain.path.slice(plain.path.lastIndexOf("/") + 1);
    loaded = await loadInScratchServer({
      bin,
      version,
      dir,
      dbfilename,
      maxDb,
      signal: ctx.signal,
      phase: (phase) => ctx.progress({ phase }),
    });
  } catch (error) {
    if (error instanceof ScratchUnsupported) {
      return { check: "parse and key counts", scratch_server_skipped: error.message };
    }
    throw error;
  } finally {
    await plain.release();
  }
  const problems = compareLoad(loaded, request.manifest.facts);
  if (problems.length > 0) {
    throw new CairnError(
      "VERIFY_FAILED",
      `Backup ${request.manifest.key} does not match the source: ${problems.join("; ")}`,
      { details: { scratch_server: loaded } },
    );
  }
  const facts = request.manifest.facts;
  return {
    check: "scratch redis-server",
    scratch_server: {
      version,
      digest: loaded.digest,
      digest_check: typeof facts.digest === "string"
        ? "matches the source's at backup time"
        : `not compared: no digest was recorded at backup time (${
          typeof facts.digest_skipped === "string"
            ? facts.digest_skipped
            : "the backup predates digests"
        })`,
      keys_per_db: loaded.keys_per_db,
    },
  };
}

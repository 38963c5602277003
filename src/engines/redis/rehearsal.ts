import { CairnError } from "../../errors.ts";
import { basename, dirname } from "node:path";
import type { EngineContext } from "../engine.ts";
import type { Manifest } from "../../repository/manifest.ts";
import { rdbVersionFor } from "./rdb_version.ts";
import {
  loadInScratchServer,
  redisServerVersion,
  type ScratchLoad,
  ScratchUnsupported,
} from "./scratch_server.ts";

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

/** A scratch server to load the backup into, or why there is none. */
export type RehearsalPlan = { bin: string; version: string } | { skipped: string };

const skip = (reason: string): RehearsalResult => ({
  check: "parse and key counts",
  scratch_server_skipped: reason,
});

function versionGap(bin: string, version: string, rdbVersion: number): string | null {
  const readable = rdbVersionFor(version);
  return rdbVersion > readable
    ? `${bin} ${version} reads RDB up to v${readable}; the backup is RDB v${rdbVersion} ` +
      `(install a newer redis-server, or set ${SETTING})`
    : null;
}

/**
 * Whether a Redis verify goes beyond the parse, decided before the artifact is
 * copied: a redis-server must be at hand (`tools.redis_server`, else `redis-server`
 * on PATH; a configured one that cannot be run is TOOL_MISSING), able to read the
 * manifest's RDB version, on a host with the memory to load it (memoryShortfall).
 */
export async function planRehearsal(
  tools: { redis_server?: string },
  manifest: Manifest,
): Promise<RehearsalPlan> {
  const bin = tools.redis_server ?? "redis-server";
  const version = await redisServerVersion(bin, tools.redis_server !== undefined, SETTING);
  if (version === null) {
    return {
      skipped:
        `redis-server is not on PATH (install it, or set ${SETTING}, to load the backup into a scratch server)`,
    };
  }
  const recorded = Number(manifest.facts.rdb_version ?? 0);
  const gap = versionGap(bin, version, recorded);
  if (gap !== null) return { skipped: gap };
  const tooBig = memoryShortfall(
    manifest.plain_size_bytes ?? manifest.size_bytes,
    availableMemory(),
  );
  return tooBig !== null ? { skipped: tooBig } : { bin, version };
}

/**
 * The rehearsal of a Redis backup beyond the parse: the checked plain RDB at
 * `rdbPath` (a private scratch directory, which the caller removes) is loaded into
 * a scratch redis-server (scratch_server.ts) and compared (compareLoad); a
 * difference is VERIFY_FAILED naming both values. With no server planned, a server
 * older than the RDB's actual version, or one that cannot load its module data, the
 * parse and key counts already done stand, and the result says why.
 */
export async function rehearse(
  ctx: Pick<EngineContext, "signal" | "progress">,
  manifest: Manifest,
  plan: RehearsalPlan,
  rdbPath: string | null,
  rdb: { rdb_version: number; keys: Record<string, number> },
): Promise<RehearsalResult> {
  if ("skipped" in plan) return skip(plan.skipped);
  if (rdbPath === null) throw new Error("rehearse: a planned rehearsal needs the RDB's path");
  const gap = versionGap(plan.bin, plan.version, rdb.rdb_version);
  if (gap !== null) return skip(gap);
  const maxDb = Math.max(0, ...Object.keys(rdb.keys).map((d) => Number(d.slice(2))));
  let loaded: ScratchLoad;
  try {
    loaded = await loadInScratchServer({
      bin: plan.bin,
      version: plan.version,
      dir: dirname(rdbPath),
      dbfilename: basename(rdbPath),
      maxDb,
      signal: ctx.signal,
      phase: (phase) => ctx.progress({ phase }),
    });
  } catch (error) {
    if (error instanceof ScratchUnsupported) return skip(error.message);
    throw error;
  }
  const problems = compareLoad(loaded, manifest.facts);
  if (problems.length > 0) {
    throw new CairnError(
      "VERIFY_FAILED",
      `Backup ${manifest.key} does not match the source: ${problems.join("; ")}`,
      { details: { scratch_server: loaded } },
    );
  }
  const facts = manifest.facts;
  return {
    check: "scratch redis-server",
    scratch_server: {
      version: plan.version,
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

import type { ClientConfig } from "../../config/schema.ts";
import { CairnError, isCairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { VERSION } from "../../version.ts";
import type {
  ArtifactAccess,
  BackupFacts,
  Engine,
  EngineContext,
  RestoreRequest,
  VerifyRequest,
} from "../engine.ts";
import { explain, spawnTool, type Tool } from "../process.ts";
import { compareCounts, countRows, type Counts, sampleCompressionRatio } from "./catalog.ts";
import {
  assertDatabaseName,
  connect,
  conninfoFor,
  parsePgUrl,
  pgError,
  type PgTarget,
  type Sql,
  toolEnv,
} from "./conn.ts";
import { assertDumpCanRead, toolVersion } from "./tools.ts";
import { recompressArchive } from "./archive_recompress.ts";
import { DeflatePool } from "./deflate_pool.ts";
import {
  chooseCompression,
  type CompressionSetting,
  parseCompressionSetting,
  wantsSample,
} from "./compression_choice.ts";

/** pg_dump's own default level for the custom format (zlib's default). */
const DUMP_LEVEL = 6;

function compressionSetting(): CompressionSetting {
  try {
    return parseCompressionSetting(Deno.env.get("CAIRN_PG_COMPRESSION"));
  } catch (error) {
    throw new CairnError("CONFIG_INVALID", (error as Error).message);
  }
}

type PostgresClient = Extract<ClientConfig, { kind: "postgres" }>;

async function open(target: PgTarget, database = target.database): Promise<Sql> {
  const sql = connect(target, database);
  try {
    await sql`SELECT 1`;
    return sql;
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw pgError(error, target, database);
  }
}

/** A maintenance connection for CREATE / DROP DATABASE: the postgres database, else template1. */
async function openAdmin(target: PgTarget): Promise<Sql> {
  try {
    return await open(target, "postgres");
  } catch (error) {
    if (isCairnError(error, "SOURCE_REFUSED") && /does not exist/.test(error.message)) {
      return await open(target, "template1");
    }
    throw error;
  }
}

async function databaseExists(admin: Sql, name: string): Promise<boolean> {
  return (await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`).length > 0;
}

/** Whether a database holds anything a restore would clobber. */
async function databaseHasObjects(target: PgTarget, name: string): Promise<boolean> {
  const sql = await open(target, name);
  try {
    const [{ n }] = await sql.unsafe<Array<{ n: string }>>(`
      SELECT count(*)::text AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg\\_toast%'`);
    return Number(n) > 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function dropDatabase(target: PgTarget, name: string): Promise<void> {
  const admin = await openAdmin(target);
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

function toolFailure(tool: Tool, name: string, status: Deno.CommandStatus): CairnError {
  const why = explain(tool.stderr()) || `exit code ${status.code}`;
  return new CairnError("SOURCE_UNAVAILABLE", `${name} failed: ${why}`);
}

/**
 * Feeds the (checksum-verifying) artifact into pg_restore's stdin. If the artifact
 * turns out damaged, pg_restore is killed before it can see the end of its input,
 * so its single transaction never commits.
 */
async function restoreInto(
  ctx: EngineContext<PostgresClient>,
  target: PgTarget,
  artifact: ArtifactAccess,
  database: string,
  options: { clean: boolean },
): Promise<void> {
  // A local artifact is checked whole first, then read by pg_restore as a file:
  // faster than a pipe (pg_restore's small reads wake both processes thousands of
  // times), and damage is found before anything is restored.
  const file = await artifact.verifiedFile();
  const restoreTool = await toolVersion(
    ctx.tools.pg_restore,
    "tools.pg_restore (or CAIRN_PG_RESTORE_PATH)",
  );
  const { env, cleanup } = await toolEnv(target, ctx.scratch);
  try {
    const args = [
      `--dbname=${conninfoFor(database)}`,
      "--no-owner",
      "--no-privileges",
      "--exit-on-error",
      "--single-transaction",
      "--no-password",
      ...(options.clean ? ["--clean", "--if-exists"] : []),
    ];
    if (file !== null) {
      ctx.progress({ bytes_done: 0, phase: "pg_restore reading the checked artifact" });
      const tool = spawnTool(restoreTool.bin, [...args, "--", file], {
        env,
        signal: ctx.signal,
        setting: "tools.pg_restore",
      });
      const status = await tool.exited;
      ctx.signal.throwIfAborted();
      if (!status.success) throw toolFailure(tool, "pg_restore", status);
      return;
    }
    const tool = spawnTool(restoreTool.bin, args, {
      env,
      stdin: "piped",
      signal: ctx.signal,
      setting: "tools.pg_restore",
    });
    const writer = tool.child.stdin.getWriter();
    const reader = (await artifact.open()).getReader();
    let artifactError: unknown = null;
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          artifactError = error;
          tool.kill();
          break;
        }
        if (chunk.done) break;
        try {
          await writer.write(chunk.value);
        } catch {
          break; // pg_restore stopped reading: its exit status says why
        }
      }
      if (!artifactError) await writer.close().catch(() => {});
    } finally {
      reader.releaseLock();
    }
    const status = await tool.exited;
    if (artifactError) throw artifactError;
    ctx.signal.throwIfAborted();
    if (!status.success) throw toolFailure(tool, "pg_restore", status);
  } finally {
    await cleanup();
  }
}

/**
 * pg_dump's uncompressed archive, compressed by `pool`. An archive that stops short
 * because pg_dump failed is reported as pg_dump's failure (its stderr says why),
 * not as an unreadable archive.
 */
async function* recompressed(tool: Tool, pool: DeflatePool): AsyncGenerator<Uint8Array> {
  try {
    yield* recompressArchive(
      readInto(tool.child.stdout),
      (plain, room) => pool.deflate(plain, room),
      {
        level: DUMP_LEVEL,
        inFlight: pool.threads * 2,
      },
    );
  } catch (error) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      tool.exited,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 2000)),
    ]);
    clearTimeout(timer);
    if (status && !status.success) throw toolFailure(tool, "pg_dump", status);
    throw error;
  }
}

/**
 * A byte stream read into one reused buffer: ArchiveRecompressor copies what it
 * keeps, and a fresh 64 KiB buffer per read of a GiB-sized dump would leave tens
 * of MiB of garbage between collections.
 */
async function* readInto(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader({ mode: "byob" });
  let buffer = new Uint8Array(256 * 1024);
  try {
    for (;;) {
      const { done, value } = await reader.read(buffer);
      if (done || !value) return;
      yield value;
      buffer = new Uint8Array(value.buffer);
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * PostgreSQL through pg_dump's custom format, streamed. Row counts are taken in
 * the very snapshot pg_dump dumps (exported from a REPEATABLE READ transaction
 * that stays open until pg_dump exits), so writes during the backup can never make
 * a later verification disagree with the manifest.
 */
export const postgresEngine: Engine<PostgresClient> = {
  kind: "postgres",
  extension: "dump",

  async backup(ctx) {
    const target = parsePgUrl(ctx.client.url);
    // Asking pg_dump its version and connecting overlap: both are start-up latency.
    const asking = toolVersion(ctx.tools.pg_dump, "tools.pg_dump (or CAIRN_PG_DUMP_PATH)");
    asking.catch(() => {});
    const sql = await open(target);
    let dump: Awaited<typeof asking>;
    try {
      dump = await asking;
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw error;
    }
    let reserved: Awaited<ReturnType<Sql["reserve"]>> | null = null;
    let envCleanup: (() => Promise<void>) | null = null;
    let tool: Tool | null = null;
    let pool: DeflatePool | null = null;
    const cleanup = async () => {
      pool?.close();
      if (tool) {
        // "Cancelled" must mean the child is gone, not merely signalled.
        tool.kill();
        await Promise.race([tool.exited, new Promise((r) => setTimeout(r, 6000))]);
      }
      reserved?.release();
      await sql.end({ timeout: 5 }).catch(() => {});
      await envCleanup?.();
    };
    try {
      reserved = await sql.reserve();
      const [{ server_version, server_version_num }] = await reserved<
        Array<{ server_version: string; server_version_num: string }>
      >`
        SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS server_version_num`;
      assertDumpCanRead(dump, server_version, Number(server_version_num));
      await reserved`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
      await reserved`SET LOCAL idle_in_transaction_session_timeout = 0`;
      await reserved`SET LOCAL statement_timeout = 0`;
      // One backend per count: parallel workers would take the CPU pg_dump needs.
      await reserved`SET LOCAL max_parallel_workers_per_gather = 0`;
      const [{ snapshot }] = await reserved<
        Array<{ snapshot: string }>
      >`SELECT pg_export_snapshot() AS snapshot`;
      const [{ size }] = await reserved<
        Array<{ size: string }>
      >`SELECT pg_database_size(current_database())::text AS size`;
      const env = await toolEnv(target, ctx.scratch);
      envCleanup = env.cleanup;
      // pg_dump compresses on one core, which for poorly compressible data makes it
      // the whole backup's bottleneck. Then cairn asks for an uncompressed archive
      // and compresses its data on worker threads into the archive pg_dump would
      // have written (see archive_recompress.ts and compression_choice.ts).
      const inputs = {
        setting: compressionSetting(),
        dumpMajor: dump.major,
        cores: navigator.hardwareConcurrency ?? 1,
        databaseBytes: Number(size),
      };
      const choice = chooseCompression({
        ...inputs,
        sampleRatio: wantsSample(inputs)
          ? await sampleCompressionRatio(reserved as unknown as Sql)
          : null,
      });
      const recompress = choice.by === "cairn";
      if (recompress) pool = new DeflatePool({ level: DUMP_LEVEL });
      const compression = pool
        ? `zlib level ${DUMP_LEVEL}, by cairn on ${pool.threads} thread(s) (${choice.why})`
        : `pg_dump's own (${choice.why})`;
      tool = spawnTool(
        dump.bin,
        [
          "--format=custom",
          ...(recompress ? ["--compress=0"] : []),
          "--no-password",
          `--snapshot=${snapshot}`,
        ],
        {
          env: env.env,
          stdout: "piped",
          signal: ctx.signal,
          setting: "tools.pg_dump",
        },
      );
      ctx.progress({ bytes_done: 0, phase: "dumping" });
      const started = tool;
      // The counts run in the exporting transaction while pg_dump reads the same
      // snapshot: the same numbers, but the scans overlap the dump instead of preceding it.
      const counting = countRows(reserved as unknown as Sql, ctx.signal);
      counting.catch(() => {});
      const facts = (async (): Promise<BackupFacts> => {
        const [status, counts] = await Promise.all([started.exited, counting]);
        if (!status.success) throw toolFailure(started, "pg_dump", status);
        await reserved!`COMMIT`;
        const rows = Object.values(counts.tables).reduce((a, b) => a + b, 0);
        return {
          tool_versions: { cairn: VERSION, pg_dump: dump.version, server: server_version },
          facts: {
            database: target.database,
            server_version,
            pg_dump_version: dump.version,
            database_size_bytes: Number(size),
            snapshot,
            compression,
            tables: counts.tables,
            large_objects: counts.large_objects,
          },
          counters: { tables: Object.keys(counts.tables).length, rows },
        };
      })();
      facts.catch(() => {});
      const deflater = pool;
      const body = deflater
        ? ReadableStream.from(recompressed(started, deflater))
        : started.child.stdout;
      return { body, facts, cleanup };
    } catch (error) {
      await cleanup();
      throw pgError(error, target);
    }
  },

  async restore(ctx, request: RestoreRequest) {
    const target = parsePgUrl(ctx.client.url);
    const database = request.target ?? target.database;
    assertDatabaseName(database, "restore target");
    const admin = await openAdmin(target);
    let created = false;
    let exists: boolean;
    try {
      exists = await databaseExists(admin, database);
      if (!exists) {
        await admin.unsafe(`CREATE DATABASE "${database}" TEMPLATE template0`);
        created = true;
      }
    } catch (error) {
      throw pgError(error, target, database);
    } finally {
      await admin.end({ timeout: 5 });
    }
    if (exists && !request.replace && (await databaseHasObjects(target, database))) {
      throw new CairnError(
        "TARGET_NOT_EMPTY",
        `Restore target database ${database} is not empty: pass --yes on the command line or "replace": true to overwrite it`,
      );
    }
    try {
      ctx.progress({ bytes_done: 0, bytes_total: request.manifest.size_bytes, phase: "restoring" });
      await restoreInto(ctx, target, request, database, { clean: exists });
    } catch (error) {
      // Leave nothing half-made: a database cairn created for this restore goes again.
      if (created) {
        await dropDatabase(target, database).catch((e) =>
          logger.warn("Could not drop a failed restore's database", { database, error: String(e) })
        );
      }
      throw error;
    }
    // pg_restore ran in one transaction with --exit-on-error and succeeded: every row
    // of the dump is there. The numbers come from the manifest, not from scanning the
    // whole database again (verify is the run that counts and compares).
    const tables = (request.manifest.facts.tables ?? {}) as Record<string, number>;
    return {
      target: database,
      created,
      tables: Object.keys(tables).length,
      rows: Object.values(tables).reduce((a, b) => a + b, 0),
    };
  },

  async verify(ctx, request: VerifyRequest) {
    const target = parsePgUrl(ctx.client.url);
    // Job ids are only unique within one job store; two hosts (or a CLI with its own
    // store) verifying against one server must never share, or drop, a scratch database.
    const scratch = `cairn_verify_${ctx.jobId}_${
      crypto.randomUUID().replaceAll("-", "").slice(0, 10)
    }`;
    try {
      const admin = await openAdmin(target);
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${scratch}" WITH (FORCE)`);
        await admin.unsafe(`CREATE DATABASE "${scratch}" TEMPLATE template0`);
      } catch (error) {
        throw pgError(error, target, scratch);
      } finally {
        await admin.end({ timeout: 5 });
      }
      ctx.progress({
        bytes_done: 0,
        bytes_total: request.manifest.size_bytes,
        phase: "restore rehearsal",
      });
      await restoreInto(ctx, target, request, scratch, { clean: false });
      const sql = await open(target, scratch);
      let actual: Counts;
      try {
        actual = await countRows(sql, ctx.signal);
      } finally {
        await sql.end({ timeout: 5 });
      }
      const expected = {
        tables: (request.manifest.facts.tables ?? {}) as Record<string, number>,
        large_objects: Number(request.manifest.facts.large_objects ?? 0),
      };
      const problems = compareCounts(expected, actual);
      const comparison = Object.keys({ ...expected.tables, ...actual.tables }).sort().map((
        name,
      ) => ({
        table: name,
        manifest: expected.tables[name] ?? null,
        restored: actual.tables[name] ?? null,
      }));
      if (problems.length) {
        throw new CairnError(
          "VERIFY_FAILED",
          `Restore rehearsal of ${request.manifest.key} does not match its manifest: ${
            problems.join("; ")
          }`,
          {
            details: comparison,
          },
        );
      }
      return {
        scratch_database: scratch,
        tables_checked: comparison.length,
        rows_checked: Object.values(actual.tables).reduce((a, b) => a + b, 0),
        large_objects: actual.large_objects,
        comparison,
      };
    } finally {
      // Whatever happened (failure, cancel), the scratch database goes.
      await dropDatabase(target, scratch).catch((e) =>
        logger.warn("Could not drop the scratch database", { database: scratch, error: String(e) })
      );
    }
  },
};
